"""Template gettext: the same output as Jinja's new-style gettext, escaping included."""

from __future__ import annotations

import jinja2
import pytest

from mailwarden.web.webmail.core import make_templates

SOURCES = [
    '{{ _("Inbox") }}',
    '{{ _("100%% sure") }}',
    '{{ _("Messages in %(f)s", f=name) }}',
    '{{ _(name) }}|{{ _("Page %(p)d of %(n)d", p=2, n=9) }}',
    '{{ ngettext("%(num)d message", "%(num)d messages", n) }}',
    '{{ ngettext("%(num)d in %(f)s", "%(num)d in %(f)s", n, f=name) }}',
]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("n", [1, 3])
def test_same_as_jinja(source: str, n: int) -> None:
    reference = jinja2.Environment(autoescape=True, extensions=["jinja2.ext.i18n"])
    reference.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    ours = make_templates()
    values = {"name": "<b>Sales & 'Co'</b>", "n": n}
    expected = reference.from_string(source).render(values)
    assert ours.from_string(source).render(values) == expected
    assert ours.from_string(source).render(values) == expected  # cached the same
