"""SQL for per-account mail in the SQLite store: folders, entries, flags, messages.

Every function takes the ``AccountId`` it acts for and restricts each query to
that account's folders; a folder id from another account is "not found".

Modseq (RFC 7162): each folder counts its own ``highestmodseq``.  One operation
on a folder (an append, a STORE, an expunge) takes the next value and stamps
every entry it changes with it; expunged UIDs are remembered in ``vanished``
with that value for QRESYNC.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from mailwarden.mail.facts import MessageFacts
from mailwarden.store.base import (
    HIERARCHY_SEP,
    AccountId,
    AppendResult,
    Change,
    ChangeKind,
    CopyResult,
    FlagMode,
    FlagUpdate,
    Folder,
    FolderExists,
    FolderId,
    FolderStatus,
    InvalidFolderName,
    MessageEntry,
    MessageSummary,
    NotFound,
    OutboundCopy,
    QueuedMessage,
    QuotaExceeded,
    QuotaUsage,
    SpecialUse,
)
from mailwarden.store.blobs import BlobStore, is_inline
from mailwarden.store.search import TextIndex, header_text, matches
from mailwarden.store.sqlite_admin import QUEUE_COLUMNS, queued_from_row, release_messages
from mailwarden.store.sqlite_db import Effects

FLAG_BITS = {"\\Seen": 1, "\\Answered": 2, "\\Flagged": 4, "\\Deleted": 8, "\\Draft": 16}
_BIT_FLAGS = tuple(FLAG_BITS.items())
_FLAG_BY_LOWER = {name.lower(): bit for name, bit in FLAG_BITS.items()}
SEEN, DELETED = FLAG_BITS["\\Seen"], FLAG_BITS["\\Deleted"]
MAX_FOLDER_NAME = 512

_FOLDER_COLUMNS = "id, name, special_use, uidvalidity, uidnext, highestmodseq, subscribed"
_ENTRY_COLUMNS = "uid, message_id, flags, keywords, internal_date, size, modseq"


# --- flags ------------------------------------------------------------------


def encode_flags(flags: Iterable[str]) -> tuple[int, str]:
    """System flags as a bit mask and keywords as a sorted space-separated string."""
    bits = 0
    keywords: set[str] = set()
    for flag in flags:
        bit = _FLAG_BY_LOWER.get(flag.lower()) if flag.startswith("\\") else None
        if bit is not None:
            bits |= bit
        elif flag and not flag.startswith("\\"):
            keywords.add(flag)
        # Other backslash flags (\Recent, unknown ones) are never stored.
    return bits, " ".join(sorted(keywords))


def decode_flags(bits: int, keywords: str) -> frozenset[str]:
    """The IMAP flag set of a stored entry."""
    flags = {name for name, bit in _BIT_FLAGS if bits & bit}
    if keywords:
        flags.update(keywords.split(" "))
    return frozenset(flags)


def _entry(row: tuple[Any, ...]) -> MessageEntry:
    uid, message_id, bits, keywords, internal_date, size, modseq = row
    return MessageEntry(uid, message_id, decode_flags(bits, keywords), internal_date, size, modseq)


# --- folders ------------------------------------------------------------------


def folder_key(name: str) -> tuple[str, str]:
    """Validate a folder name; return (stored name, unique key).

    The first level ``INBOX`` is case-insensitive (RFC 3501 §5.1) and always
    stored upper-case.

    Raises:
        InvalidFolderName: empty, too long, control characters, wildcards, or
            empty hierarchy levels.
    """
    if not name or len(name) > MAX_FOLDER_NAME:
        raise InvalidFolderName("folder names are 1 to 512 characters long")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name) or "*" in name or "%" in name:
        raise InvalidFolderName("folder names cannot hold control characters, * or %")
    levels = name.split(HIERARCHY_SEP)
    if any(not level for level in levels):
        raise InvalidFolderName("folder names cannot have empty levels")
    if levels[0].upper() == "INBOX":
        levels[0] = "INBOX"
    stored = HIERARCHY_SEP.join(levels)
    return stored, stored


def _folder(row: tuple[Any, ...]) -> Folder:
    id_, name, special, uidvalidity, uidnext, modseq, subscribed = row
    return Folder(
        FolderId(id_),
        name,
        SpecialUse(special) if special else None,
        uidvalidity,
        uidnext,
        modseq,
        bool(subscribed),
    )


def get_folder(conn: sqlite3.Connection, account: AccountId, name: str) -> Folder:
    """One folder by name. Raises NotFound."""
    try:
        _, key = folder_key(name)
    except InvalidFolderName:
        raise NotFound(f"no such folder: {name}") from None
    row = conn.execute(
        f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE account_id = ? AND name_key = ?",
        (account, key),
    ).fetchone()
    if row is None:
        raise NotFound(f"no such folder: {name}")
    return _folder(row)


def folder_by_id(conn: sqlite3.Connection, account: AccountId, folder_id: FolderId) -> Folder:
    """One folder by id, only if it belongs to ``account``. Raises NotFound."""
    row = conn.execute(
        f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE account_id = ? AND id = ?",
        (account, folder_id),
    ).fetchone()
    if row is None:
        raise NotFound("no such folder")
    return _folder(row)


def list_folders(conn: sqlite3.Connection, account: AccountId) -> list[Folder]:
    """The account's folders, INBOX first, then by name."""
    rows = conn.execute(
        f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE account_id = ?"
        " ORDER BY name_key != 'INBOX', name_key",
        (account,),
    ).fetchall()
    return [_folder(row) for row in rows]


def next_uidvalidity(conn: sqlite3.Connection, count: int = 1) -> int:
    """Reserve ``count`` UIDVALIDITY values, strictly above any handed out before."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'uidvalidity'").fetchone()
    last = int(row[0]) if row else 0
    first = max(int(time.time()), last + 1)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('uidvalidity', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(first + count - 1),),
    )
    return first


def create_folder(
    conn: sqlite3.Connection,
    fx: Effects,
    account: AccountId,
    name: str,
    special_use: SpecialUse | None,
) -> Folder:
    """Create a folder and any missing parents (RFC 3501 §6.3.3)."""
    stored, key = folder_key(name)
    exists = "SELECT 1 FROM folders WHERE account_id = ? AND name_key = ?"
    if conn.execute(exists, (account, key)).fetchone():
        raise FolderExists(f"folder {stored} exists already")
    levels = stored.split(HIERARCHY_SEP)
    for depth in range(1, len(levels) + 1):
        path = HIERARCHY_SEP.join(levels[:depth])
        if conn.execute(exists, (account, path)).fetchone():
            continue
        special = special_use.value if special_use and depth == len(levels) else None
        conn.execute(
            "INSERT INTO folders (account_id, name, name_key, special_use, uidvalidity)"
            " VALUES (?, ?, ?, ?, ?)",
            (account, path, path, special, next_uidvalidity(conn)),
        )
    fx.changes.append(Change(account, None, ChangeKind.FOLDERS))
    return get_folder(conn, account, stored)


def delete_folder(conn: sqlite3.Connection, fx: Effects, account: AccountId, name: str) -> None:
    """Delete a folder and its entries (RFC 3501 §6.3.4); INBOX is refused."""
    folder = get_folder(conn, account, name)
    if folder.name == "INBOX":
        raise InvalidFolderName("INBOX cannot be deleted")
    _drop_folder_entries(conn, fx, account, folder.id)
    conn.execute("DELETE FROM folders WHERE id = ?", (folder.id,))
    fx.changes.append(Change(account, folder.id, ChangeKind.FOLDERS))


def _drop_folder_entries(
    conn: sqlite3.Connection, fx: Effects, account: AccountId, folder_id: FolderId
) -> None:
    rows = conn.execute(
        "SELECT message_id, count(*), sum(size) FROM entries WHERE folder_id = ?"
        " GROUP BY message_id",
        (folder_id,),
    ).fetchall()
    conn.execute("DELETE FROM entries WHERE folder_id = ?", (folder_id,))
    _charge(conn, account, -sum(r[2] for r in rows), -sum(r[1] for r in rows))
    release_messages(conn, fx, {int(r[0]): int(r[1]) for r in rows})


def rename_folder(
    conn: sqlite3.Connection, fx: Effects, account: AccountId, old: str, new: str
) -> Folder:
    """Rename a folder and its children (RFC 3501 §6.3.5)."""
    source = get_folder(conn, account, old)
    stored, key = folder_key(new)
    if conn.execute(
        "SELECT 1 FROM folders WHERE account_id = ? AND name_key = ?", (account, key)
    ).fetchone():
        raise FolderExists(f"folder {stored} exists already")
    if source.name == "INBOX":
        # Messages move to the new folder; INBOX stays, empty.
        dest = create_folder(conn, fx, account, stored, None)
        uids = [
            r[0] for r in conn.execute("SELECT uid FROM entries WHERE folder_id = ?", (source.id,))
        ]
        if uids:
            _transfer(conn, fx, account, source, uids, dest, remove=True)
        return get_folder(conn, account, stored)
    if key.startswith(source.name + HIERARCHY_SEP):
        raise InvalidFolderName("a folder cannot be moved inside itself")
    parent_levels = stored.split(HIERARCHY_SEP)[:-1]
    for depth in range(1, len(parent_levels) + 1):
        path = HIERARCHY_SEP.join(parent_levels[:depth])
        if not conn.execute(
            "SELECT 1 FROM folders WHERE account_id = ? AND name_key = ?", (account, path)
        ).fetchone():
            create_folder(conn, fx, account, path, None)
    children = conn.execute(
        "SELECT id, name FROM folders WHERE account_id = ? AND (id = ? OR name_key LIKE ?"
        " ESCAPE '\\')",
        (account, source.id, _like_prefix(source.name + HIERARCHY_SEP)),
    ).fetchall()
    for folder_id, name in children:
        renamed = stored + str(name)[len(source.name) :]
        conn.execute(
            "UPDATE folders SET name = ?, name_key = ? WHERE id = ?",
            (renamed, renamed, folder_id),
        )
    fx.changes.append(Change(account, source.id, ChangeKind.FOLDERS))
    return get_folder(conn, account, stored)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def set_subscribed(
    conn: sqlite3.Connection, fx: Effects, account: AccountId, name: str, subscribed: bool
) -> None:
    """Mark a folder subscribed or not."""
    folder = get_folder(conn, account, name)
    conn.execute("UPDATE folders SET subscribed = ? WHERE id = ?", (int(subscribed), folder.id))
    fx.changes.append(Change(account, folder.id, ChangeKind.FOLDERS))


def folder_status(conn: sqlite3.Connection, account: AccountId, name: str) -> FolderStatus:
    """Counts of one folder."""
    folder = get_folder(conn, account, name)
    return status_of(conn, folder)


def status_of(conn: sqlite3.Connection, folder: Folder) -> FolderStatus:
    """Counts of a folder already looked up (kept by triggers, migration 0012)."""
    row = conn.execute(
        "SELECT messages, unseen, size_total, deleted FROM folders WHERE id = ?", (folder.id,)
    ).fetchone()
    return FolderStatus(folder, int(row[0]), int(row[1]), int(row[2]), int(row[3]))


# --- quota -------------------------------------------------------------------


def quota(conn: sqlite3.Connection, account: AccountId) -> QuotaUsage:
    """Use and limits of an account. Raises NotFound."""
    row = conn.execute(
        "SELECT used_bytes, quota_bytes, used_messages, quota_messages FROM accounts WHERE id = ?",
        (account,),
    ).fetchone()
    if row is None:
        raise NotFound("no such account")
    return QuotaUsage(*row)


def _charge(conn: sqlite3.Connection, account: AccountId, size: int, count: int) -> None:
    conn.execute(
        "UPDATE accounts SET used_bytes = max(0, used_bytes + ?),"
        " used_messages = max(0, used_messages + ?) WHERE id = ?",
        (size, count, account),
    )


def _require_quota(conn: sqlite3.Connection, account: AccountId, size: int, count: int) -> None:
    if not quota(conn, account).allows(size, count):
        raise QuotaExceeded("the mailbox is over its quota")


# --- messages ----------------------------------------------------------------


def insert_message(
    conn: sqlite3.Connection,
    blob: str,
    sha256: str,
    facts: MessageFacts,
    refs: int,
    data: bytes | None = None,
    facts_json: str | None = None,
) -> int:
    """Insert a message row for a blob; return its id.

    ``data`` is the message itself when it is kept inline (blob name from
    :func:`~mailwarden.store.blobs.inline_name`), None when it is in a file.
    ``facts_json`` is ``facts.to_json()`` made ahead, off the writer thread.
    """
    cur = conn.execute(
        "INSERT INTO messages (blob, sha256, size, refs, subject, from_name, from_addr,"
        " to_addrs, sent_date, preview, has_attachments, thread_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            blob,
            sha256,
            facts.size,
            refs,
            facts.subject,
            facts.from_name,
            facts.from_addr,
            "\n".join(facts.to),
            facts.date,
            facts.preview,
            int(facts.has_attachments),
            thread_key(facts),
        ),
    )
    message_id = int(cur.lastrowid or 0)
    conn.execute(
        "INSERT INTO message_facts (message_id, facts) VALUES (?, ?)",
        (message_id, facts_json if facts_json is not None else facts.to_json()),
    )
    if data is not None:
        conn.execute(
            "INSERT INTO message_blobs (message_id, data) VALUES (?, ?)", (message_id, data)
        )
    return message_id


def thread_key(facts: MessageFacts) -> str:
    """The conversation a message belongs to: the first message-id of its thread."""
    if facts.references:
        return facts.references[0]
    if facts.in_reply_to:
        return facts.in_reply_to
    return facts.message_id or f"subject:{_base_subject(facts.subject)}"


def _base_subject(subject: str) -> str:
    text = subject.strip().lower()
    while True:
        for prefix in ("re:", "fwd:", "fw:", "aw:", "sv:"):
            if text.startswith(prefix):
                text = text[len(prefix) :].strip()
                break
        else:
            return text


def _bump_modseq(conn: sqlite3.Connection, folder_id: FolderId) -> int:
    row = conn.execute(
        "UPDATE folders SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq",
        (folder_id,),
    ).fetchone()
    return int(row[0])


def add_entry(
    conn: sqlite3.Connection,
    fx: Effects,
    account: AccountId,
    folder: Folder,
    message_id: int,
    size: int,
    flags: Iterable[str],
    internal_date: int,
) -> AppendResult:
    """Add a message to a folder with the next UID and modseq; charge the quota."""
    _require_quota(conn, account, size, 1)
    row = conn.execute(
        "UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
        " WHERE id = ? RETURNING uidnext - 1, highestmodseq, uidvalidity",
        (folder.id,),
    ).fetchone()
    uid, modseq, uidvalidity = int(row[0]), int(row[1]), int(row[2])
    bits, keywords = encode_flags(flags)
    conn.execute(
        "INSERT INTO entries (folder_id, uid, message_id, flags, keywords, internal_date, size,"
        " modseq, sort_date, sort_from, sort_subject)"
        " SELECT ?, ?, ?, ?, ?, ?, ?, ?, coalesce(sent_date, ?), lower(from_name || from_addr),"
        " lower(subject) FROM messages WHERE id = ?",
        (
            folder.id,
            uid,
            message_id,
            bits,
            keywords,
            internal_date,
            size,
            modseq,
            internal_date,
            message_id,
        ),
    )
    _charge(conn, account, size, 1)
    fx.changes.append(Change(account, folder.id, ChangeKind.APPEND, modseq))
    return AppendResult(uidvalidity, uid, modseq)


def list_entries(
    conn: sqlite3.Connection, account: AccountId, folder_id: FolderId
) -> list[MessageEntry]:
    """Every entry of a folder by UID."""
    folder_by_id(conn, account, folder_id)
    rows = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE folder_id = ? ORDER BY uid", (folder_id,)
    ).fetchall()
    return [_entry(row) for row in rows]


def changes_since(
    conn: sqlite3.Connection, account: AccountId, folder_id: FolderId, modseq: int
) -> tuple[list[MessageEntry], list[int]]:
    """Entries changed and UIDs expunged after ``modseq``."""
    folder_by_id(conn, account, folder_id)
    changed = conn.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE folder_id = ? AND modseq > ? ORDER BY uid",
        (folder_id, modseq),
    ).fetchall()
    gone = conn.execute(
        "SELECT uid FROM vanished WHERE folder_id = ? AND modseq > ? ORDER BY uid",
        (folder_id, modseq),
    ).fetchall()
    return [_entry(row) for row in changed], [int(r[0]) for r in gone]


def _chunks(uids: Sequence[int], size: int = 500) -> Iterable[Sequence[int]]:
    for start in range(0, len(uids), size):
        yield uids[start : start + size]


def facts_rows(
    conn: sqlite3.Connection, account: AccountId, folder_id: FolderId, uids: Sequence[int]
) -> dict[int, MessageFacts]:
    """Facts of the given UIDs of a folder."""
    folder_by_id(conn, account, folder_id)
    out: dict[int, MessageFacts] = {}
    for chunk in _chunks(uids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT e.uid, f.facts FROM entries e"
            " JOIN message_facts f ON f.message_id = e.message_id"
            f" WHERE e.folder_id = ? AND e.uid IN ({marks})",
            (folder_id, *chunk),
        )
        for uid, facts in rows:
            out[int(uid)] = MessageFacts.from_json(facts)
    return out


def blobs_of(
    conn: sqlite3.Connection, account: AccountId, folder_id: FolderId, uids: Sequence[int]
) -> dict[int, tuple[str, bytes | None]]:
    """For each existing UID: its blob name and, when stored inline, its octets."""
    folder_by_id(conn, account, folder_id)
    out: dict[int, tuple[str, bytes | None]] = {}
    for chunk in _chunks(uids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT e.uid, m.blob, b.data FROM entries e JOIN messages m ON m.id = e.message_id"
            " LEFT JOIN message_blobs b ON b.message_id = m.id"
            f" WHERE e.folder_id = ? AND e.uid IN ({marks})",
            (folder_id, *chunk),
        )
        for uid, blob, data in rows:
            out[int(uid)] = (str(blob), bytes(data) if data is not None else None)
    return out


def get_entries(
    conn: sqlite3.Connection, account: AccountId, folder_id: FolderId, uids: Sequence[int]
) -> list[MessageEntry]:
    """The entries of the given UIDs that exist, by UID."""
    folder_by_id(conn, account, folder_id)
    return _entries(conn, folder_id, uids)


def _entries(
    conn: sqlite3.Connection, folder_id: FolderId, uids: Sequence[int]
) -> list[MessageEntry]:
    out: list[MessageEntry] = []
    for chunk in _chunks(sorted(set(uids))):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE folder_id = ?"
            f" AND uid IN ({marks}) ORDER BY uid",
            (folder_id, *chunk),
        )
        out += [_entry(row) for row in rows]
    return out


def store_flags(
    conn: sqlite3.Connection,
    fx: Effects,
    account: AccountId,
    folder_id: FolderId,
    uids: Sequence[int],
    flags: Iterable[str],
    mode: FlagMode,
    unchanged_since: int | None,
) -> FlagUpdate:
    """Change flags (see ``MailStore.store_flags``)."""
    folder_by_id(conn, account, folder_id)
    bits, keywords = encode_flags(flags)
    wanted_kw = set(keywords.split()) if keywords else set()
    updated: list[tuple[MessageEntry, int, str]] = []
    unchanged: list[MessageEntry] = []
    failed: list[int] = []
    for entry in _entries(conn, folder_id, uids):
        if unchanged_since is not None and entry.modseq > unchanged_since:
            failed.append(entry.uid)
            continue
        old_bits, old_kw = encode_flags(entry.flags)
        kw = set(old_kw.split()) if old_kw else set()
        if mode is FlagMode.ADD:
            new_bits, new_kw = old_bits | bits, kw | wanted_kw
        elif mode is FlagMode.REMOVE:
            new_bits, new_kw = old_bits & ~bits, kw - wanted_kw
        else:
            new_bits, new_kw = bits, set(wanted_kw)
        new_kw_text = " ".join(sorted(new_kw))
        if new_bits == old_bits and new_kw_text == old_kw:
            unchanged.append(entry)
        else:
            updated.append((entry, new_bits, new_kw_text))
    if not updated:
        return FlagUpdate((), tuple(unchanged), tuple(failed))
    modseq = _bump_modseq(conn, folder_id)
    result: list[MessageEntry] = []
    for entry, new_bits, new_kw_text in updated:
        conn.execute(
            "UPDATE entries SET flags = ?, keywords = ?, modseq = ?"
            " WHERE folder_id = ? AND uid = ?",
            (new_bits, new_kw_text, modseq, folder_id, entry.uid),
        )
        result.append(
            MessageEntry(
                entry.uid,
                entry.message_id,
                decode_flags(new_bits, new_kw_text),
                entry.internal_date,
                entry.size,
                modseq,
            )
        )
    fx.changes.append(Change(account, folder_id, ChangeKind.FLAGS, modseq))
    return FlagUpdate(tuple(result), tuple(unchanged), tuple(failed))


def _transfer(
    conn: sqlite3.Connection,
    fx: Effects,
    account: AccountId,
    source: Folder,
    uids: Sequence[int],
    dest: Folder,
    *,
    remove: bool,
) -> CopyResult:
    entries = _entries(conn, source.id, uids)
    if not remove:
        _require_quota(conn, account, sum(e.size for e in entries), len(entries))
    src_uids: list[int] = []
    dst_uids: list[int] = []
    uidvalidity = dest.uidvalidity
    for entry in entries:
        conn.execute("UPDATE messages SET refs = refs + 1 WHERE id = ?", (entry.message_id,))
        if remove:
            _charge(conn, account, -entry.size, -1)
        result = add_entry(
            conn,
            fx,
            account,
            dest,
            entry.message_id,
            entry.size,
            entry.flags,
            entry.internal_date,
        )
        src_uids.append(entry.uid)
        dst_uids.append(result.uid)
        uidvalidity = result.uidvalidity
    if remove and entries:
        _remove_entries(conn, fx, account, source.id, entries, charged=True)
    return CopyResult(uidvalidity, tuple(src_uids), tuple(dst_uids))


def copy(
    conn: sqlite3.Connection,
    fx: Effects,
    account: AccountId,
    folder_id: FolderId,
    uids: Sequence[int],
    dest: str,
    remove: bool,
) -> CopyResult:
    """Copy or move entries to another folder of the same account."""
    source = folder_by_id(conn, account, folder_id)
    target = get_folder(conn, account, dest)
    return _transfer(conn, fx, account, source, uids, target, remove=remove)


def _remove_entries(
    conn: sqlite3.Connection,
    fx: Effects,
    account: AccountId,
    folder_id: FolderId,
    entries: Sequence[MessageEntry],
    *,
    charged: bool = False,
) -> None:
    """Delete entries, remember them as vanished, release their messages.

    ``charged``: the quota was already credited (a move credits before it adds).
    """
    modseq = _bump_modseq(conn, folder_id)
    counts: dict[int, int] = {}
    for entry in entries:
        conn.execute("DELETE FROM entries WHERE folder_id = ? AND uid = ?", (folder_id, entry.uid))
        conn.execute(
            "INSERT OR REPLACE INTO vanished (folder_id, uid, modseq) VALUES (?, ?, ?)",
            (folder_id, entry.uid, modseq),
        )
        counts[entry.message_id] = counts.get(entry.message_id, 0) + 1
    if not charged:
        _charge(conn, account, -sum(e.size for e in entries), -len(entries))
    release_messages(conn, fx, counts)
    fx.changes.append(Change(account, folder_id, ChangeKind.EXPUNGE, modseq))


def expunge(
    conn: sqlite3.Connection,
    fx: Effects,
    account: AccountId,
    folder_id: FolderId,
    uids: Sequence[int] | None,
) -> list[int]:
    """Remove \\Deleted entries (only among ``uids`` if given)."""
    folder_by_id(conn, account, folder_id)
    if uids is None:
        rows = conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE folder_id = ? AND flags & ? != 0"
            " ORDER BY uid",
            (folder_id, DELETED),
        ).fetchall()
        entries = [_entry(row) for row in rows]
    else:
        entries = [e for e in _entries(conn, folder_id, uids) if "\\Deleted" in e.flags]
    if entries:
        _remove_entries(conn, fx, account, folder_id, entries)
    return [e.uid for e in entries]


_SORT_SQL = {
    "date": "e.sort_date",
    "from": "e.sort_from",
    "subject": "e.sort_subject",
    "size": "e.size",
    "arrival": "e.uid",
}


_SUMMARY_SELECT = (
    "SELECT e.uid, e.message_id, e.flags, e.keywords, e.internal_date, e.size, e.modseq,"
    " m.subject, m.from_name, m.from_addr, m.to_addrs, m.sent_date, m.preview,"
    " m.has_attachments, m.thread_key FROM entries e JOIN messages m ON m.id = e.message_id"
)


def _summary(row: tuple[Any, ...]) -> MessageSummary:
    return MessageSummary(
        entry=_entry(row[:7]),
        subject=row[7],
        from_name=row[8],
        from_addr=row[9],
        to=tuple(row[10].split("\n")) if row[10] else (),
        date=row[11],
        preview=row[12],
        has_attachments=bool(row[13]),
        thread_key=row[14],
    )


def list_summaries(
    conn: sqlite3.Connection,
    account: AccountId,
    folder_id: FolderId,
    sort: str,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[MessageSummary]]:
    """One page of a folder (see ``MailStore.list_summaries``)."""
    folder = folder_by_id(conn, account, folder_id)
    order = _SORT_SQL.get(sort)
    if order is None:
        raise ValueError(f"unknown sort key {sort!r}")
    direction = "DESC" if descending else "ASC"
    rows = conn.execute(
        f"{_SUMMARY_SELECT} WHERE e.folder_id = ?"
        f" ORDER BY {order} {direction}, e.uid {direction} LIMIT ? OFFSET ?",
        (folder_id, max(0, limit), max(0, offset)),
    ).fetchall()
    return status_of(conn, folder).messages, [_summary(row) for row in rows]


def get_summaries(
    conn: sqlite3.Connection, account: AccountId, folder_id: FolderId, uids: Sequence[int]
) -> list[MessageSummary]:
    """Summaries of the given UIDs that exist, by UID."""
    folder_by_id(conn, account, folder_id)
    out: list[MessageSummary] = []
    for chunk in _chunks(sorted(set(uids))):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"{_SUMMARY_SELECT} WHERE e.folder_id = ? AND e.uid IN ({marks}) ORDER BY e.uid",
            (folder_id, *chunk),
        )
        out += [_summary(row) for row in rows]
    return out


def thread_summaries(
    conn: sqlite3.Connection, account: AccountId, folder_id: FolderId, thread_key: str
) -> list[MessageSummary]:
    """Every message of one conversation in a folder, oldest first."""
    folder_by_id(conn, account, folder_id)
    rows = conn.execute(
        f"{_SUMMARY_SELECT} WHERE m.thread_key = ? AND e.folder_id = ? ORDER BY e.sort_date, e.uid",
        (thread_key, folder_id),
    ).fetchall()
    return [_summary(row) for row in rows]


def enqueue_outbound(
    conn: sqlite3.Connection,
    outbound: OutboundCopy,
    blob: str,
    sha256: str,
    facts: MessageFacts,
    now: int,
    data: bytes | None = None,
    facts_json: str | None = None,
) -> QueuedMessage:
    """Insert a message row for a prepared blob and a queue entry for it."""
    message_id = insert_message(conn, blob, sha256, facts, 1, data, facts_json)
    cur = conn.execute(
        "INSERT INTO outbound_queue (account_id, mail_from, recipients, message_id, size,"
        " dsn, created, next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            outbound.account,
            outbound.mail_from,
            "\n".join(outbound.recipients),
            message_id,
            len(outbound.raw),
            outbound.dsn,
            now,
            now,
        ),
    )
    row = conn.execute(
        f"SELECT {QUEUE_COLUMNS} FROM outbound_queue WHERE id = ?", (cur.lastrowid,)
    ).fetchone()
    return queued_from_row(row)


def search_text(
    conn: sqlite3.Connection,
    index: TextIndex,
    blobs: BlobStore,
    account: AccountId,
    folder_id: FolderId,
    needle: str,
    header: bool,
    body: bool,
    uids: Sequence[int] | None,
) -> set[int]:
    """UIDs of a folder whose header and/or body contain ``needle`` (see ``MailStore``)."""
    folder_by_id(conn, account, folder_id)
    wanted = set(uids) if uids is not None else None
    found_ids, upto = index.candidates(needle, header=header, body=body)
    result: set[int] = set()
    unindexed: list[int] = []
    if wanted is None:
        pairs: Iterable[tuple[int, int]] = conn.execute(
            "SELECT uid, message_id FROM entries WHERE folder_id = ?", (folder_id,)
        )
    else:
        pairs = []
        for chunk in _chunks(sorted(wanted)):
            marks = ",".join("?" * len(chunk))
            pairs += conn.execute(
                f"SELECT uid, message_id FROM entries WHERE folder_id = ? AND uid IN ({marks})",
                (folder_id, *chunk),
            ).fetchall()
    for uid, message_id in pairs:
        if message_id <= upto:
            if message_id in found_ids:
                result.add(uid)
        else:
            unindexed.append(uid)
    for chunk in _chunks(unindexed):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT e.uid, m.blob, m.subject, m.from_name, f.facts,"
            " substr(b.data, 1, json_extract(f.facts, '$.header_end'))"
            " FROM entries e JOIN messages m ON m.id = e.message_id"
            " JOIN message_facts f ON f.message_id = m.id"
            " LEFT JOIN message_blobs b ON b.message_id = m.id"
            f" WHERE e.folder_id = ? AND e.uid IN ({marks})",
            (folder_id, *chunk),
        )
        for uid, blob, subject, from_name, facts_json, head in rows:
            facts = json.loads(facts_json)
            texts = []
            if header:
                if head is None and not is_inline(blob):
                    head = blobs.path(blob).read_bytes()[: int(facts.get("header_end", 0))]
                texts.append(header_text(bytes(head or b""), subject, from_name))
            if body:
                texts.append(str(facts.get("text", "")))
            if matches(needle, *texts):
                result.add(int(uid))
    return result
