"""Text ready for translation: the ``_`` and ``ngettext`` every webmail module uses.

Messages are marked with ``_()`` in Python and templates.  Today the
catalogue is the identity (:class:`gettext.NullTranslations`); installing a
real catalogue (and choosing it per request from ``Accept-Language``) is a
change here and in :func:`.core.make_templates`.  The functions are bound once
because :func:`gettext.gettext` searches the file system on every call.
"""

from __future__ import annotations

import gettext

__all__ = ["_", "ngettext"]

_catalogue = gettext.NullTranslations()
_ = _catalogue.gettext
ngettext = _catalogue.ngettext
