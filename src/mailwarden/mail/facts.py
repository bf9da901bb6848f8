"""The facts about a message that readers need, computed once at delivery.

CONTRACT (the store depends on these names; the IMAP work fills in the body):
``compute_facts(raw: bytes) -> MessageFacts`` and ``MessageFacts.to_json()`` /
``MessageFacts.from_json(text)``.
"""

from __future__ import annotations
