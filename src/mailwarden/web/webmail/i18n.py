"""Text ready for translation: the ``_`` and ``ngettext`` every webmail module uses.

Messages are marked with ``_()`` in Python and templates.  Today the
catalogue is the identity (:class:`gettext.NullTranslations`); installing a
real catalogue (and choosing it per request from ``Accept-Language``) is a
change here and in :func:`.core.make_templates`.  The functions are bound once
because :func:`gettext.gettext` searches the file system on every call.
"""

from __future__ import annotations

import gettext
from typing import Any

from markupsafe import Markup

__all__ = ["_", "ngettext", "template_gettext", "template_ngettext"]

_catalogue = gettext.NullTranslations()
_ = _catalogue.gettext
ngettext = _catalogue.ngettext

_CACHE_MAX = 4096
_translated: dict[str, Markup] = {}


def template_gettext(message: str, /, **variables: Any) -> Markup:
    """``_()`` in templates: what Jinja's new-style gettext returns, made cheaply.

    Jinja's own version goes through the template context on every call
    (about 40 calls a page).  This one marks the translation ``Markup``
    (translations are ours, trusted like the template text) and formats it
    with ``%``, which escapes the variables, exactly as Jinja's does; the
    result for a message without variables is kept.  A per-request catalogue
    would key the cache by catalogue.
    """
    if not variables:
        found = _translated.get(message)
        if found is not None:
            return found
    text = Markup(_(message))  # noqa: S704 - our own texts, as Jinja's gettext does
    # As Jinja does: always a format string, so "%%" reads the same everywhere.
    result = text % variables
    if not variables and len(_translated) < _CACHE_MAX:
        _translated[message] = result
    return result


def template_ngettext(singular: str, plural: str, num: int, /, **variables: Any) -> Markup:
    """``ngettext()`` in templates (new style: ``num`` is a format variable)."""
    variables.setdefault("num", num)
    return Markup(ngettext(singular, plural, num)) % variables  # noqa: S704 - as above
