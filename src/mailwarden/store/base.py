"""The mail store interface: accounts, folders, messages and their changes.

Theory of operation
-------------------
Every protocol and the web read and write mail through :class:`Store`, a narrow
async interface with domain methods rather than key-value primitives, so that a
second backend (PostgreSQL) is one more module passing the same contract suite
(``tests/store/contract.py``).

* **Tenancy.** Every mail method takes the :data:`AccountId` it acts for and
  touches only that account's rows; no mail method reads across accounts.  The
  admin methods (domains, accounts, aliases, recipient resolution) are the only
  ones that see more than one tenant, and they are for the operator's tools and
  the SMTP recipient check.
* **Messages are stored once.** The raw octets go to an immutable blob (in
  the database for small messages, a file for large ones); a *message* row
  holds the facts computed once at
  delivery (:class:`mailwarden.mail.facts.MessageFacts`); a folder *entry* holds
  what is per folder: UID, flags, internal date, modseq.  One delivery to ten
  recipients writes one blob and ten entries.
* **Durability.** :meth:`Store.append` and :meth:`Store.deliver` return only
  after the blob is fsynced and the transaction is committed.  A reply that
  promises the message (SMTP ``250``, IMAP ``OK`` after APPEND) is sent after.
* **Changes.** Every committed change to an account's mail is announced on the
  store's :class:`ChangeHub` after the commit, so IDLE and webmail push react
  within a second.  Subscribers then ask the store what changed since the
  modseq they last saw.
* **Flags** are IMAP spellings: system flags (``\\Seen``, ``\\Answered``,
  ``\\Flagged``, ``\\Deleted``, ``\\Draft``) and keywords (any atom).
* **Folder names** are Unicode with ``/`` as the hierarchy separator; ``INBOX``
  is case-insensitive (RFC 3501 §5.1).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NewType, Protocol

from mailwarden.mail.address import Address

if TYPE_CHECKING:
    from mailwarden.mail.facts import MessageFacts

__all__ = [
    "HIERARCHY_SEP",
    "SYSTEM_FLAGS",
    "Account",
    "AccountExists",
    "AccountId",
    "AccountStatus",
    "AdminStore",
    "Alias",
    "AppendResult",
    "Change",
    "ChangeHub",
    "ChangeKind",
    "CopyResult",
    "Domain",
    "DomainNotEmpty",
    "FlagMode",
    "FlagUpdate",
    "Folder",
    "FolderExists",
    "FolderId",
    "FolderStatus",
    "InvalidFolderName",
    "MailStore",
    "MessageEntry",
    "MessageSummary",
    "NotFound",
    "OutboundCopy",
    "QueuedMessage",
    "QuotaExceeded",
    "QuotaUsage",
    "Resolution",
    "SpecialUse",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Subscription",
]

AccountId = NewType("AccountId", int)
FolderId = NewType("FolderId", int)

HIERARCHY_SEP = "/"
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


# --- errors ---------------------------------------------------------------


class StoreError(Exception):
    """Base of the store's domain errors; the text is safe to show an operator."""


class NotFound(StoreError):
    """The named domain, account, alias, folder or message does not exist."""


class AccountExists(StoreError):
    """An account, alias or domain with that name already exists."""


class FolderExists(StoreError):
    """A folder with that name already exists."""


class InvalidFolderName(StoreError):
    """The folder name is empty, malformed, or reserved (INBOX rules)."""


class DomainNotEmpty(StoreError):
    """A domain still has mailboxes or aliases and ``force`` was not given."""


class QuotaExceeded(StoreError):
    """The account's byte or message quota would be exceeded."""


class StoreUnavailable(StoreError):
    """The store cannot commit right now (disk full, database locked, I/O error)."""


# --- value types ----------------------------------------------------------


class AccountStatus(enum.StrEnum):
    """Whether an account may log in and receive mail."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class SpecialUse(enum.StrEnum):
    """RFC 6154 special-use roles of folders."""

    SENT = "\\Sent"
    DRAFTS = "\\Drafts"
    TRASH = "\\Trash"
    JUNK = "\\Junk"
    ARCHIVE = "\\Archive"
    ALL = "\\All"
    FLAGGED = "\\Flagged"


DEFAULT_FOLDERS: tuple[tuple[str, SpecialUse | None], ...] = (
    ("INBOX", None),
    ("Sent", SpecialUse.SENT),
    ("Drafts", SpecialUse.DRAFTS),
    ("Trash", SpecialUse.TRASH),
    ("Junk", SpecialUse.JUNK),
    ("Archive", SpecialUse.ARCHIVE),
)


@dataclass(frozen=True, slots=True)
class Domain:
    """A hosted domain, or an alias domain whose mail goes to ``alias_of``."""

    id: int
    name: str  # A-label
    display: str  # U-label
    alias_of: str | None
    accounts: int
    aliases: int
    created: int


@dataclass(frozen=True, slots=True)
class Account:
    """A mailbox owner: the unit of tenancy, login and quota.

    ``credential_version`` changes whenever the password does; caches of
    successful logins are keyed by it so they die with the old password.
    """

    id: AccountId
    address: str  # local@domain, domain as A-label, local part as created
    domain: str
    display_name: str
    status: AccountStatus
    password_hash: str
    credential_version: int
    quota_bytes: int  # 0: unlimited
    quota_messages: int  # 0: unlimited
    used_bytes: int
    used_messages: int
    created: int


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """An account's storage use against its limits (0 limit: unlimited)."""

    used_bytes: int
    limit_bytes: int
    used_messages: int
    limit_messages: int

    def allows(self, size: int, count: int = 1) -> bool:
        """Whether ``count`` more messages totalling ``size`` octets fit."""
        if self.limit_bytes and self.used_bytes + size > self.limit_bytes:
            return False
        return not (self.limit_messages and self.used_messages + count > self.limit_messages)


@dataclass(frozen=True, slots=True)
class Alias:
    """``source`` (``local@domain``, or ``@domain`` for a catch-all) forwards to targets."""

    source: str
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where mail for one recipient address goes.

    Attributes:
        hosted: the recipient's domain is ours (else accepting it would be relaying).
        accounts: local accounts that receive it (empty: unknown recipient).
        external: addresses outside our domains that an alias forwards to.
        quotas: each account's storage use, read in the same look-up (may be
            empty from a backend that does not provide it).
    """

    hosted: bool
    accounts: tuple[AccountId, ...] = ()
    external: tuple[str, ...] = ()
    quotas: tuple[QuotaUsage, ...] = ()  # of ``accounts``, in order, read with them


@dataclass(frozen=True, slots=True)
class Folder:
    """A folder of one account."""

    id: FolderId
    name: str
    special_use: SpecialUse | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """Counts for IMAP STATUS, SELECT and the webmail folder list."""

    folder: Folder
    messages: int
    unseen: int
    size: int
    deleted: int


@dataclass(frozen=True, slots=True)
class MessageEntry:
    """A message's place in one folder: what IMAP keeps per UID."""

    uid: int
    message_id: int  # the stored message (shared by copies)
    flags: frozenset[str]
    internal_date: int  # epoch seconds
    size: int
    modseq: int


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """A folder entry with the list fields webmail shows."""

    entry: MessageEntry
    subject: str
    from_name: str
    from_addr: str
    to: tuple[str, ...]
    date: int | None
    preview: str
    has_attachments: bool
    thread_key: str


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an appended message landed (RFC 4315 APPENDUID)."""

    uidvalidity: int
    uid: int
    modseq: int


@dataclass(frozen=True, slots=True)
class CopyResult:
    """UIDs of copied messages, paired in order (RFC 4315 COPYUID)."""

    uidvalidity: int
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


class FlagMode(enum.Enum):
    """How STORE combines flags: +FLAGS, -FLAGS or FLAGS."""

    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"


@dataclass(frozen=True, slots=True)
class FlagUpdate:
    """Result of a flag change (RFC 7162 CONDSTORE semantics).

    Attributes:
        updated: entries whose flags changed, with their new modseq.
        unchanged: entries the request touched that needed no change.
        failed: UIDs refused because their modseq was above UNCHANGEDSINCE.
    """

    updated: tuple[MessageEntry, ...]
    unchanged: tuple[MessageEntry, ...] = ()
    failed: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboundCopy:
    """The copy of a message that goes into the outbound queue for remote recipients."""

    account: AccountId | None
    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes
    dsn: str = "{}"


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message waiting in the outbound queue for remote recipients."""

    id: int
    account_id: AccountId | None
    mail_from: str
    recipients: tuple[str, ...]
    size: int
    created: int
    next_attempt: int
    attempts: int
    last_error: str
    dsn: str  # JSON of the DSN parameters (RET, ENVID, NOTIFY, ORCPT)


# --- change notifications ---------------------------------------------------


class ChangeKind(enum.Enum):
    """What kind of change a notification announces."""

    APPEND = "append"
    FLAGS = "flags"
    EXPUNGE = "expunge"
    FOLDERS = "folders"  # created, renamed, deleted, subscribed


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change to an account's mail."""

    account: AccountId
    folder: FolderId | None
    kind: ChangeKind
    modseq: int = 0


class Subscription:
    """A listener's queue of changes for one account; use as an async iterator."""

    def __init__(self, hub: ChangeHub, account: AccountId, maxsize: int = 1024) -> None:
        self._hub = hub
        self.account = account
        self._queue: asyncio.Queue[Change] = asyncio.Queue(maxsize)
        self.overflowed = False

    def _put(self, change: Change) -> None:
        try:
            self._queue.put_nowait(change)
        except asyncio.QueueFull:
            # A slow listener loses detail, never the fact that something changed.
            self.overflowed = True

    async def get(self) -> Change:
        """Wait for the next change."""
        return await self._queue.get()

    def drain(self) -> list[Change]:
        """Return the changes queued so far without waiting."""
        out: list[Change] = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    def close(self) -> None:
        """Stop receiving changes."""
        self._hub._unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Change]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Change]:
        while True:
            yield await self.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ChangeHub:
    """In-process fan-out of changes to the subscribers of each account.

    ``publish`` may be called from any thread: it hops onto the loop that the
    subscriber lives on.  A Redis-backed hub with the same methods carries
    changes between nodes in a cluster.
    """

    _subs: dict[AccountId, set[Subscription]] = field(default_factory=dict)
    _loops: dict[int, asyncio.AbstractEventLoop] = field(default_factory=dict)

    def subscribe(self, account: AccountId) -> Subscription:
        """Start receiving the changes of ``account`` (call from the event loop)."""
        sub = Subscription(self, account)
        self._subs.setdefault(account, set()).add(sub)
        self._loops[id(sub)] = asyncio.get_running_loop()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.account)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.account]
        self._loops.pop(id(sub), None)

    def publish(self, changes: Iterable[Change]) -> None:
        """Announce committed changes to every subscriber of their accounts."""
        for change in changes:
            for sub in tuple(self._subs.get(change.account, ())):
                loop = self._loops.get(id(sub))
                if loop is None or loop.is_closed():
                    continue
                try:
                    running = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if running is loop:
                    sub._put(change)
                else:
                    loop.call_soon_threadsafe(sub._put, change)


# --- the interface ------------------------------------------------------------


class AdminStore(Protocol):
    """Operator-level operations: domains, accounts, aliases, recipients, queue."""

    async def add_domain(self, name: str, alias_of: str | None = None) -> Domain:
        """Add a hosted domain (or an alias domain of an existing one).

        Raises:
            AccountExists: the domain exists already.
            NotFound: ``alias_of`` is not a hosted domain.
            mailwarden.mail.AddressError: the name is not a valid domain.
        """
        ...

    async def list_domains(self) -> list[Domain]:
        """All domains, by name."""
        ...

    async def get_domain(self, name: str) -> Domain:
        """One domain by name (U- or A-label). Raises NotFound."""
        ...

    async def remove_domain(self, name: str, *, force: bool = False) -> None:
        """Remove a domain; with ``force`` also its accounts, mail and aliases.

        Raises:
            NotFound: no such domain.
            DomainNotEmpty: it has accounts or aliases and ``force`` is false.
        """
        ...

    async def add_account(
        self,
        address: Address,
        password_hash: str,
        *,
        display_name: str = "",
        quota_bytes: int = 0,
        quota_messages: int = 0,
    ) -> Account:
        """Create an account with its default folders (INBOX and special-use ones).

        Raises:
            NotFound: the domain is not hosted (or is an alias domain).
            AccountExists: the address is taken by an account or an alias.
        """
        ...

    async def find_account(self, address: str) -> Account | None:
        """The account of ``address`` (case-insensitive local part), or None.

        Addresses in alias domains resolve to the target domain's account.
        Returns None for anything that is not an address.
        """
        ...

    async def get_account(self, account: AccountId) -> Account:
        """One account by id. Raises NotFound."""
        ...

    async def list_accounts(self, domain: str | None = None) -> list[Account]:
        """Accounts, optionally of one domain, by address. Raises NotFound for a bad domain."""
        ...

    async def set_password_hash(self, account: AccountId, password_hash: str) -> Account:
        """Replace the password hash and bump ``credential_version``."""
        ...

    async def set_quota(
        self, account: AccountId, *, quota_bytes: int, quota_messages: int
    ) -> Account:
        """Set the limits (0: unlimited)."""
        ...

    async def set_status(self, account: AccountId, status: AccountStatus) -> Account:
        """Suspend or resume an account."""
        ...

    async def set_display_name(self, account: AccountId, display_name: str) -> Account:
        """Change the name shown in From: headers the account writes."""
        ...

    async def remove_account(self, account: AccountId) -> None:
        """Delete an account with all its folders and mail."""
        ...

    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        """Add an alias ``local@domain`` or a catch-all ``@domain``.

        Raises:
            NotFound: the source domain is not hosted.
            AccountExists: the source is already an account or an alias.
            mailwarden.mail.AddressError: a source or target is malformed.
        """
        ...

    async def list_aliases(self, domain: str | None = None) -> list[Alias]:
        """Aliases, optionally of one domain."""
        ...

    async def remove_alias(self, source: str) -> None:
        """Remove an alias. Raises NotFound."""
        ...

    async def resolve_recipient(self, address: Address) -> Resolution:
        """Expand a recipient through domain aliases, aliases and catch-alls.

        An exact account or alias wins over a catch-all.  Alias chains are
        followed to a bounded depth; loops end there.  Suspended accounts do
        not receive mail.
        """
        ...

    async def addresses_of(self, account: AccountId) -> list[str]:
        """Addresses the account may send as: its own and aliases that reach only it."""
        ...

    async def enqueue_outbound(
        self,
        account: AccountId | None,
        mail_from: str,
        recipients: Sequence[str],
        raw: bytes,
        dsn: str = "{}",
    ) -> QueuedMessage:
        """Durably queue a message for remote recipients (returns after commit)."""
        ...

    async def list_queue(self) -> list[QueuedMessage]:
        """Every queued message, oldest first."""
        ...

    async def get_queued(self, queue_id: int) -> tuple[QueuedMessage, bytes]:
        """A queued message and its raw octets. Raises NotFound."""
        ...

    async def remove_queued(self, queue_id: int) -> None:
        """Drop a queued message. Raises NotFound."""
        ...


class MailStore(Protocol):
    """Per-account mail: every method acts for one account only."""

    changes: ChangeHub

    async def list_folders(self, account: AccountId) -> list[Folder]:
        """The account's folders, by name (INBOX first)."""
        ...

    async def get_folder(self, account: AccountId, name: str) -> Folder:
        """One folder by name (INBOX case-insensitive). Raises NotFound."""
        ...

    async def create_folder(
        self, account: AccountId, name: str, special_use: SpecialUse | None = None
    ) -> Folder:
        """Create a folder (and missing parents). Raises FolderExists, InvalidFolderName."""
        ...

    async def delete_folder(self, account: AccountId, name: str) -> None:
        """Delete a folder and its messages. INBOX cannot be deleted (InvalidFolderName)."""
        ...

    async def rename_folder(self, account: AccountId, old: str, new: str) -> Folder:
        """Rename a folder and its children, keeping UIDVALIDITY.

        Renaming INBOX moves its messages to a new folder and leaves INBOX empty
        (RFC 3501 §6.3.5).
        """
        ...

    async def set_subscribed(self, account: AccountId, name: str, subscribed: bool) -> None:
        """Mark a folder subscribed or not (RFC 3501 SUBSCRIBE/UNSUBSCRIBE)."""
        ...

    async def folder_status(self, account: AccountId, name: str) -> FolderStatus:
        """Counts of one folder. Raises NotFound."""
        ...

    async def quota(self, account: AccountId) -> QuotaUsage:
        """Storage use and limits."""
        ...

    async def append(
        self,
        account: AccountId,
        folder: str,
        raw: bytes,
        *,
        flags: Iterable[str] = (),
        internal_date: int | None = None,
    ) -> AppendResult:
        """Store a message in a folder; durable when it returns.

        Raises:
            NotFound: no such folder.
            QuotaExceeded: the message does not fit the account's quota.
            StoreUnavailable: nothing was stored.
        """
        ...

    async def deliver(
        self, accounts: Sequence[AccountId], raw: bytes, *, folder: str = "INBOX"
    ) -> dict[AccountId, AppendResult]:
        """Deliver one message to many accounts in one durable transaction.

        Accounts over quota are skipped (absent from the result); every other
        account gets the message, or none does (StoreUnavailable).
        """
        ...

    async def deliver_and_queue(
        self, accounts: Sequence[AccountId], raw: bytes, outbound: OutboundCopy | None
    ) -> tuple[dict[AccountId, AppendResult], QueuedMessage | None]:
        """Deliver locally and queue the remote copy in one durable transaction.

        Like :meth:`deliver` for the local accounts; ``outbound`` (if any) is
        queued in the same commit, so a crash keeps both or neither.
        """
        ...

    async def list_entries(self, account: AccountId, folder_id: FolderId) -> list[MessageEntry]:
        """Every entry of a folder by UID: the base of an IMAP session's view."""
        ...

    async def changes_since(
        self, account: AccountId, folder_id: FolderId, modseq: int
    ) -> tuple[list[MessageEntry], list[int]]:
        """Entries changed and UIDs expunged after ``modseq`` (RFC 7162)."""
        ...

    async def get_facts(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int]
    ) -> dict[int, MessageFacts]:
        """Facts of the given UIDs (missing UIDs are absent)."""
        ...

    async def read_message(self, account: AccountId, folder_id: FolderId, uid: int) -> bytes:
        """The raw octets of one message. Raises NotFound."""
        ...

    async def read_messages(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int]
    ) -> dict[int, bytes]:
        """The raw octets of many messages in one call (missing UIDs are absent)."""
        ...

    async def get_entries(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int]
    ) -> list[MessageEntry]:
        """The entries of the given UIDs that exist, by UID."""
        ...

    async def search_text(
        self,
        account: AccountId,
        folder_id: FolderId,
        needle: str,
        *,
        header: bool = True,
        body: bool = True,
        uids: Sequence[int] | None = None,
    ) -> set[int]:
        """UIDs whose header and/or decoded body contain ``needle``, ignoring case.

        The header is searched raw and with its subject and sender name decoded
        (RFC 2047), the body as the decoded text of its text parts (IMAP
        ``SEARCH TEXT``/``BODY``, webmail search).  ``uids`` limits the answer.
        """
        ...

    async def store_flags(
        self,
        account: AccountId,
        folder_id: FolderId,
        uids: Sequence[int],
        flags: Iterable[str],
        mode: FlagMode,
        *,
        unchanged_since: int | None = None,
    ) -> FlagUpdate:
        """Change flags of entries; each change gets a new modseq."""
        ...

    async def copy(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int], dest: str
    ) -> CopyResult:
        """Copy entries to another folder of the same account (quota applies)."""
        ...

    async def move(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int], dest: str
    ) -> CopyResult:
        """Move entries atomically (RFC 6851)."""
        ...

    async def expunge(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int] | None = None
    ) -> list[int]:
        """Remove entries flagged \\Deleted (only those in ``uids`` if given).

        Returns the expunged UIDs, ascending.
        """
        ...

    async def list_summaries(
        self,
        account: AccountId,
        folder_id: FolderId,
        *,
        sort: str = "date",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[MessageSummary]]:
        """One page of a folder for list views; returns (total, page).

        ``sort`` is one of ``date``, ``from``, ``subject``, ``size``, ``arrival``.
        """
        ...

    async def get_summaries(
        self, account: AccountId, folder_id: FolderId, uids: Sequence[int]
    ) -> list[MessageSummary]:
        """Summaries of the given UIDs that exist, by UID (search results)."""
        ...

    async def thread_summaries(
        self, account: AccountId, folder_id: FolderId, thread_key: str
    ) -> list[MessageSummary]:
        """Every message of one conversation in a folder, oldest first."""
        ...


class Store(AdminStore, MailStore, Protocol):
    """The whole store: admin operations plus per-account mail."""

    async def close(self) -> None:
        """Finish pending work and release connections."""
        ...
