"""The layout of :mod:`mailwarden.mail`: exact ``__all__`` lists, and the facades.

:mod:`mailwarden.mail.mime` gathers the MIME readers and
:mod:`mailwarden.mail.facts` re-exports a few names, so that importers need
not know which module does which job; both must hand out the very objects of
the modules that define them.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

import mailwarden.mail
from mailwarden.mail import facts, imapwire, mime, mimetree

# The modules that mailwarden.mail.mime gathers.
READERS = ("addresslist", "bodytext", "charsets", "headers", "multipart", "params")

# Every module that reads messages (address.py, the envelope address type, is
# tested in tests/test_address.py).
MODULES = sorted({*READERS, "facts", "imapwire", "mime", "mimetree"})


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"mailwarden.mail.{name}")


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_what_the_module_defines(name: str) -> None:
    module = _module(name)
    exported = set(module.__all__)
    assert all(hasattr(module, n) for n in exported)
    defined = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and (callable(v) or isinstance(v, type))
        and getattr(v, "__module__", None) == module.__name__
    }
    assert defined <= exported, defined - exported


def test_mime_gathers_exactly_the_readers() -> None:
    gathered = {n: _module(m) for m in READERS for n in _module(m).__all__}
    assert sorted(mime.__all__) == sorted(gathered)
    for name, home in gathered.items():
        assert getattr(mime, name) is getattr(home, name), name


def test_every_message_module_is_listed() -> None:
    present = {m.name for m in pkgutil.iter_modules(mailwarden.mail.__path__)}
    assert present == {*MODULES, "address"}


def test_facts_reexports() -> None:
    assert facts.imap_string is imapwire.imap_string
    assert (facts.MAX_DEPTH, facts.MAX_PARTS) == (mimetree.MAX_DEPTH, mimetree.MAX_PARTS)
    assert set(facts.__all__) == {
        "MAX_DEPTH",
        "MAX_PARTS",
        "MessageFacts",
        "Part",
        "compute_facts",
        "imap_string",
        "part_for",
    }


@pytest.mark.parametrize("name", MODULES)
def test_mail_imports_only_itself_and_the_stdlib(name: str) -> None:
    """proto/ may import mail/, so mail/ must stay as pure as proto/ (STYLE §1)."""
    path = Path(mailwarden.mail.__path__[0]) / f"{name}.py"
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for imported in names:
            top = imported.split(".")[0]
            if top == "mailwarden":
                assert imported.startswith("mailwarden.mail"), (name, imported)
            else:
                assert top in sys.stdlib_module_names, (name, imported)
