"""Immutable message blobs as files, written durably before metadata commits.

Messages up to an inline limit are kept in the database instead (names
starting with :data:`INLINE_PREFIX`), so that their durability costs no
fsync of its own; this module handles the larger ones.

Each blob file gets a fresh random name, so a file is only ever referenced by the
message row created with it: deleting a file whose row reached zero references
can never race with a new delivery.  A write goes to a temporary file that is
fsynced, renamed into place, and its directory fsynced, so after a crash a blob
is either whole or absent.  Blobs written for a transaction that never committed
are orphans; :meth:`BlobStore.orphans` finds them for removal at start-up.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["INLINE_PREFIX", "BlobStore", "inline_name", "is_inline"]

# Names of blobs kept inside the database (see migration 0011) start with this.
INLINE_PREFIX = "db:"


def is_inline(name: str) -> bool:
    """Whether blob ``name`` lives in the database rather than in a file."""
    return name.startswith(INLINE_PREFIX)


def inline_name() -> str:
    """A fresh name for a blob kept in the database."""
    return INLINE_PREFIX + secrets.token_hex(16)


class BlobStore:
    """A directory of blob files fanned out by the first two characters of their name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        """Where blob ``name`` lives."""
        return self.root / name[:2] / name

    def write(self, data: bytes) -> str:
        """Store ``data`` durably and return the new blob's name."""
        name = secrets.token_hex(16)
        final = self.path(name)
        directory = final.parent
        directory.mkdir(exist_ok=True)
        tmp = directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(directory)
        return name

    def read(self, name: str) -> bytes:
        """The octets of blob ``name``. Raises FileNotFoundError."""
        return self.path(name).read_bytes()

    def delete(self, names: Iterable[str]) -> None:
        """Remove blob files that no message references any more (inline names are skipped)."""
        for name in names:
            if not is_inline(name):
                self.path(name).unlink(missing_ok=True)

    def files_older_than(self, seconds: float) -> list[Path]:
        """Blob files (and temporary leftovers) last written more than ``seconds`` ago."""
        cutoff = time.time() - seconds
        found: list[Path] = []
        for directory in self.root.iterdir():
            if directory.is_dir():
                found += [
                    Path(entry.path)
                    for entry in os.scandir(directory)
                    if entry.stat().st_mtime < cutoff
                ]
        return found

    @staticmethod
    def remove_files(paths: Iterable[Path]) -> None:
        """Remove files found to be orphans."""
        for path in paths:
            path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
