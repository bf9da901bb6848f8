"""Delivery: where accepted mail goes (local mailboxes, the outbound queue) and the
rules for submitted mail (sender ownership, sending limits).

See :mod:`mailwarden.delivery.inbound` for the theory of operation.
"""

from mailwarden.delivery.inbound import Delivery, RecipientDecision
from mailwarden.delivery.submission import SendingLimits

__all__ = ["Delivery", "RecipientDecision", "SendingLimits"]
