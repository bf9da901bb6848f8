"""The contract every Store backend passes.

A backend's test module imports these tests and provides a ``store`` fixture
(see ``test_store_sqlite.py``).  The tests speak only the interface in
``mailwarden.store.base``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from mailwarden.mail.address import Address, AddressError
from mailwarden.store.base import (
    AccountExists,
    AccountStatus,
    ChangeKind,
    DomainNotEmpty,
    FlagMode,
    FolderExists,
    InvalidFolderName,
    NotFound,
    OutboundCopy,
    QuotaExceeded,
    SpecialUse,
    Store,
)


def message(subject: str = "hello", body: str = "body text", sender: str = "a@x.test") -> bytes:
    return (
        f"From: Sender <{sender}>\r\nTo: demo@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@x.test>\r\n"
        f"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


async def make_account(store: Store, address: str = "demo@example.test", **kw: int):
    domain = address.rsplit("@", 1)[1]
    with contextlib.suppress(AccountExists):
        await store.add_domain(domain)
    return await store.add_account(Address.parse(address), "argon2-hash", **kw)


# --- domains ------------------------------------------------------------------


async def test_domains_are_stored_as_a_labels_and_shown_as_u_labels(store: Store) -> None:
    domain = await store.add_domain("Bücher.Example")
    assert domain.name == "xn--bcher-kva.example"
    assert domain.display == "bücher.example"
    assert (await store.get_domain("xn--bcher-kva.example")).id == domain.id
    assert [d.name for d in await store.list_domains()] == ["xn--bcher-kva.example"]
    with pytest.raises(AccountExists):
        await store.add_domain("bücher.example")


async def test_invalid_domains_are_refused(store: Store) -> None:
    for bad in ("", "nodot", "-bad.example", "a..b", "x" * 64 + ".test"):
        with pytest.raises(AddressError):
            await store.add_domain(bad)


async def test_removing_a_domain_with_mailboxes_needs_force(store: Store) -> None:
    account = await make_account(store)
    await store.append(account.id, "INBOX", message())
    with pytest.raises(DomainNotEmpty):
        await store.remove_domain("example.test")
    await store.remove_domain("example.test", force=True)
    assert await store.list_domains() == []
    assert await store.find_account("demo@example.test") is None
    with pytest.raises(NotFound):
        await store.remove_domain("example.test")


# --- accounts -----------------------------------------------------------------


async def test_new_account_has_the_special_folders(store: Store) -> None:
    account = await make_account(store)
    folders = {f.name: f.special_use for f in await store.list_folders(account.id)}
    assert folders == {
        "INBOX": None,
        "Sent": SpecialUse.SENT,
        "Drafts": SpecialUse.DRAFTS,
        "Trash": SpecialUse.TRASH,
        "Junk": SpecialUse.JUNK,
        "Archive": SpecialUse.ARCHIVE,
    }
    validities = [f.uidvalidity for f in await store.list_folders(account.id)]
    assert len(set(validities)) == len(validities)


async def test_accounts_are_found_case_insensitively_and_are_unique(store: Store) -> None:
    account = await make_account(store, "Alice@example.test")
    found = await store.find_account("alice@EXAMPLE.test")
    assert found is not None and found.id == account.id
    assert found.address == "Alice@example.test"
    with pytest.raises(AccountExists):
        await store.add_account(Address.parse("ALICE@example.test"), "h")
    assert await store.find_account("nobody@example.test") is None
    assert await store.find_account("not an address") is None


async def test_account_needs_a_hosted_domain(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.add_account(Address.parse("a@unknown.test"), "h")


async def test_password_change_bumps_the_credential_version(store: Store) -> None:
    account = await make_account(store)
    changed = await store.set_password_hash(account.id, "new-hash")
    assert changed.password_hash == "new-hash"
    assert changed.credential_version == account.credential_version + 1


async def test_suspend_resume_and_quota(store: Store) -> None:
    account = await make_account(store)
    assert (await store.set_status(account.id, AccountStatus.SUSPENDED)).status == "suspended"
    res = await store.resolve_recipient(Address.parse("demo@example.test"))
    assert res.hosted and res.accounts == ()
    await store.set_status(account.id, AccountStatus.ACTIVE)
    updated = await store.set_quota(account.id, quota_bytes=1000, quota_messages=5)
    assert (updated.quota_bytes, updated.quota_messages) == (1000, 5)


async def test_alias_domain_maps_to_the_target_domains_mailboxes(store: Store) -> None:
    account = await make_account(store)
    await store.add_domain("example.org", alias_of="example.test")
    found = await store.find_account("demo@example.org")
    assert found is not None and found.id == account.id
    res = await store.resolve_recipient(Address.parse("DEMO@example.org"))
    assert res.accounts == (account.id,)
    with pytest.raises(NotFound):
        await store.add_account(Address.parse("x@example.org"), "h")
    assert "demo@example.org" in await store.addresses_of(account.id)


# --- aliases and recipients ---------------------------------------------------


async def test_recipient_resolution(store: Store) -> None:
    demo = await make_account(store)
    bob = await make_account(store, "bob@example.test")
    await store.add_alias("team@example.test", ["demo@example.test", "bob@example.test"])
    await store.add_alias("ext@example.test", ["someone@remote.test"])
    await store.add_alias("loop1@example.test", ["loop2@example.test"])
    await store.add_alias("loop2@example.test", ["loop1@example.test", "bob@example.test"])

    async def resolve(addr: str):
        return await store.resolve_recipient(Address.parse(addr))

    team = await resolve("team@example.test")
    assert team.accounts == (demo.id, bob.id)
    assert [q.used_messages for q in team.quotas] in ([], [0, 0])
    assert (await resolve("ext@example.test")).external == ("someone@remote.test",)
    assert (await resolve("loop1@example.test")).accounts == (bob.id,)
    unknown = await resolve("nobody@example.test")
    assert unknown.hosted and unknown.accounts == ()
    assert not (await resolve("x@elsewhere.test")).hosted
    await store.add_alias("@example.test", ["demo@example.test"])
    assert (await resolve("nobody@example.test")).accounts == (demo.id,)
    assert (await resolve("bob@example.test")).accounts == (bob.id,)  # exact beats catch-all
    assert "team@example.test" not in await store.addresses_of(demo.id)
    await store.add_alias("demo.alias@example.test", ["demo@example.test"])
    assert "demo.alias@example.test" in await store.addresses_of(demo.id)


async def test_alias_management(store: Store) -> None:
    await make_account(store)
    with pytest.raises(AccountExists):
        await store.add_alias("demo@example.test", ["x@y.test"])
    with pytest.raises(NotFound):
        await store.add_alias("a@unknown.test", ["demo@example.test"])
    with pytest.raises(AddressError):
        await store.add_alias("a@example.test", ["not an address"])
    alias = await store.add_alias("info@example.test", ["demo@example.test"])
    assert alias.source == "info@example.test"
    assert [a.source for a in await store.list_aliases("example.test")] == ["info@example.test"]
    await store.remove_alias("info@example.test")
    assert await store.list_aliases() == []
    with pytest.raises(NotFound):
        await store.remove_alias("info@example.test")


# --- folders ------------------------------------------------------------------


async def test_folder_lifecycle(store: Store) -> None:
    account = await make_account(store)
    child = await store.create_folder(account.id, "Projects/2024/Q1")
    names = [f.name for f in await store.list_folders(account.id)]
    assert {"Projects", "Projects/2024", "Projects/2024/Q1"} <= set(names)
    with pytest.raises(FolderExists):
        await store.create_folder(account.id, "Projects")
    await store.append(account.id, "Projects/2024/Q1", message())
    renamed = await store.rename_folder(account.id, "Projects", "Work/Old")
    assert renamed.name == "Work/Old"
    moved = await store.get_folder(account.id, "Work/Old/2024/Q1")
    assert moved.uidvalidity == child.uidvalidity
    assert (await store.folder_status(account.id, "Work/Old/2024/Q1")).messages == 1
    await store.delete_folder(account.id, "Work/Old/2024/Q1")
    with pytest.raises(NotFound):
        await store.get_folder(account.id, "Work/Old/2024/Q1")
    recreated = await store.create_folder(account.id, "Work/Old/2024/Q1")
    assert recreated.uidvalidity > child.uidvalidity


async def test_inbox_rules(store: Store) -> None:
    account = await make_account(store)
    assert (await store.get_folder(account.id, "inbox")).name == "INBOX"
    with pytest.raises(InvalidFolderName):
        await store.delete_folder(account.id, "INBOX")
    with pytest.raises(FolderExists):
        await store.create_folder(account.id, "Inbox")
    await store.append(account.id, "INBOX", message("one"))
    await store.append(account.id, "INBOX", message("two"))
    await store.rename_folder(account.id, "INBOX", "Old Inbox")
    assert (await store.folder_status(account.id, "INBOX")).messages == 0
    assert (await store.folder_status(account.id, "Old Inbox")).messages == 2


async def test_invalid_folder_names(store: Store) -> None:
    account = await make_account(store)
    for bad in ("", "a//b", "/lead", "trail/", "bad*", "bad%", "ctl\x01"):
        with pytest.raises(InvalidFolderName):
            await store.create_folder(account.id, bad)


# --- messages -----------------------------------------------------------------


async def test_append_read_back_byte_identical(store: Store) -> None:
    account = await make_account(store)
    raw = message("greetings", body="Grüße\r\n.\r\nline") + bytes(range(256))
    result = await store.append(
        account.id, "INBOX", raw, flags=["\\Seen", "$Label1"], internal_date=1_700_000_000
    )
    inbox = await store.get_folder(account.id, "INBOX")
    assert (result.uid, result.uidvalidity) == (1, inbox.uidvalidity)
    assert inbox.uidnext == 2 and inbox.highestmodseq == result.modseq
    [entry] = await store.list_entries(account.id, inbox.id)
    assert entry.flags == {"\\Seen", "$Label1"}
    assert (entry.internal_date, entry.size) == (1_700_000_000, len(raw))
    assert await store.read_message(account.id, inbox.id, 1) == raw
    facts = await store.get_facts(account.id, inbox.id, [1, 99])
    assert list(facts) == [1] and facts[1].subject == "greetings"
    assert (await store.quota(account.id)).used_bytes == len(raw)


async def test_flags_modes_and_condstore(store: Store) -> None:
    account = await make_account(store)
    for i in range(3):
        await store.append(account.id, "INBOX", message(f"m{i}"))
    inbox = await store.get_folder(account.id, "INBOX")
    add = await store.store_flags(account.id, inbox.id, [1, 2], ["\\flagged", "Work"], FlagMode.ADD)
    assert [e.flags for e in add.updated] == [{"\\Flagged", "Work"}] * 2
    modseq = add.updated[0].modseq
    again = await store.store_flags(account.id, inbox.id, [1], ["\\Flagged"], FlagMode.ADD)
    assert again.updated == () and len(again.unchanged) == 1
    rem = await store.store_flags(account.id, inbox.id, [1], ["Work"], FlagMode.REMOVE)
    assert rem.updated[0].flags == {"\\Flagged"} and rem.updated[0].modseq > modseq
    cond = await store.store_flags(
        account.id, inbox.id, [1, 2, 3], ["\\Seen"], FlagMode.REPLACE, unchanged_since=modseq
    )
    assert cond.failed == (1,)
    assert {e.uid for e in cond.updated} == {2, 3}
    changed, vanished = await store.changes_since(account.id, inbox.id, modseq)
    assert {e.uid for e in changed} == {1, 2, 3} and vanished == []
    with pytest.raises(NotFound):
        await store.get_folder(account.id, "nope")


async def test_copy_move_expunge_and_vanished(store: Store) -> None:
    account = await make_account(store)
    for i in range(4):
        await store.append(account.id, "INBOX", message(f"m{i}"))
    inbox = await store.get_folder(account.id, "INBOX")
    archive = await store.get_folder(account.id, "Archive")
    copied = await store.copy(account.id, inbox.id, [1, 2], "Archive")
    assert copied.source_uids == (1, 2) and copied.dest_uids == (1, 2)
    assert copied.uidvalidity == archive.uidvalidity
    before = (await store.get_folder(account.id, "INBOX")).highestmodseq
    moved = await store.move(account.id, inbox.id, [3], "Archive")
    assert moved.dest_uids == (3,)
    assert [e.uid for e in await store.list_entries(account.id, inbox.id)] == [1, 2, 4]
    await store.store_flags(account.id, inbox.id, [1, 4], ["\\Deleted"], FlagMode.ADD)
    assert await store.expunge(account.id, inbox.id, [4]) == [4]
    assert await store.expunge(account.id, inbox.id) == [1]
    _, vanished = await store.changes_since(account.id, inbox.id, before)
    assert vanished == [1, 3, 4]
    status = await store.folder_status(account.id, "Archive")
    assert status.messages == 3
    assert (await store.quota(account.id)).used_messages == 4  # 1 in INBOX, 3 in Archive
    assert await store.read_message(account.id, archive.id, 1) == message("m0")


async def test_quota_is_enforced(store: Store) -> None:
    account = await make_account(store, quota_messages=2)
    await store.append(account.id, "INBOX", message("1"))
    await store.append(account.id, "INBOX", message("2"))
    with pytest.raises(QuotaExceeded):
        await store.append(account.id, "INBOX", message("3"))
    inbox = await store.get_folder(account.id, "INBOX")
    with pytest.raises(QuotaExceeded):
        await store.copy(account.id, inbox.id, [1], "Archive")
    moved = await store.move(account.id, inbox.id, [1], "Archive")  # moving frees as it takes
    assert moved.dest_uids == (1,)


async def test_deliver_to_many_in_one_transaction(store: Store) -> None:
    a = await make_account(store)
    b = await make_account(store, "b@example.test")
    full = await make_account(store, "full@example.test", quota_bytes=10)
    raw = message("broadcast")
    results = await store.deliver([a.id, b.id, full.id, a.id], raw)
    assert set(results) == {a.id, b.id}
    for account in (a, b):
        inbox = await store.get_folder(account.id, "INBOX")
        assert await store.read_message(account.id, inbox.id, results[account.id].uid) == raw
    assert await store.deliver([full.id], raw) == {}


async def test_tenants_cannot_reach_each_other(store: Store) -> None:
    a = await make_account(store)
    b = await make_account(store, "b@example.test")
    await store.append(a.id, "INBOX", message("secret"))
    a_inbox = await store.get_folder(a.id, "INBOX")
    with pytest.raises(NotFound):
        await store.list_entries(b.id, a_inbox.id)
    with pytest.raises(NotFound):
        await store.read_message(b.id, a_inbox.id, 1)
    with pytest.raises(NotFound):
        await store.get_facts(b.id, a_inbox.id, [1])
    with pytest.raises(NotFound):
        await store.store_flags(b.id, a_inbox.id, [1], ["\\Seen"], FlagMode.ADD)
    with pytest.raises(NotFound):
        await store.expunge(b.id, a_inbox.id)
    with pytest.raises(NotFound):
        await store.copy(b.id, a_inbox.id, [1], "INBOX")
    with pytest.raises(NotFound):
        await store.list_summaries(b.id, a_inbox.id)
    assert (await store.folder_status(b.id, "INBOX")).messages == 0


async def test_removing_an_account_removes_its_mail(store: Store) -> None:
    a = await make_account(store)
    b = await make_account(store, "b@example.test")
    results = await store.deliver([a.id, b.id], message("shared"))
    await store.remove_account(a.id)
    b_inbox = await store.get_folder(b.id, "INBOX")
    assert await store.read_message(b.id, b_inbox.id, results[b.id].uid) == message("shared")
    with pytest.raises(NotFound):
        await store.get_account(a.id)


async def test_change_notifications(store: Store) -> None:
    account = await make_account(store)
    other = await make_account(store, "other@example.test")
    with store.changes.subscribe(account.id) as sub:
        await store.append(other.id, "INBOX", message("not mine"))
        result = await store.append(account.id, "INBOX", message("mine"))
        change = await asyncio.wait_for(sub.get(), 1.0)
        assert change.kind is ChangeKind.APPEND and change.modseq == result.modseq
        inbox = await store.get_folder(account.id, "INBOX")
        await store.store_flags(account.id, inbox.id, [1], ["\\Deleted"], FlagMode.ADD)
        assert (await asyncio.wait_for(sub.get(), 1.0)).kind is ChangeKind.FLAGS
        await store.expunge(account.id, inbox.id)
        assert (await asyncio.wait_for(sub.get(), 1.0)).kind is ChangeKind.EXPUNGE
        assert sub.drain() == []


async def test_summaries_sort_and_page(store: Store) -> None:
    account = await make_account(store)
    for subject, sender in (("banana", "c@x.test"), ("apple", "b@x.test"), ("cherry", "a@x.test")):
        await store.append(account.id, "INBOX", message(subject, sender=sender))
    inbox = await store.get_folder(account.id, "INBOX")
    total, page = await store.list_summaries(
        account.id, inbox.id, sort="subject", descending=False, limit=2
    )
    assert total == 3 and [s.subject for s in page] == ["apple", "banana"]
    _, page = await store.list_summaries(account.id, inbox.id, sort="arrival", offset=2, limit=5)
    assert [s.subject for s in page] == ["banana"]
    _, page = await store.list_summaries(account.id, inbox.id, sort="size", descending=True)
    assert len(page) == 3 and page[0].from_name == "Sender"


async def test_outbound_queue(store: Store) -> None:
    account = await make_account(store)
    raw = message("outgoing")
    queued = await store.enqueue_outbound(
        account.id, "demo@example.test", ["x@remote.test", "y@remote.test"], raw, '{"ret":"HDRS"}'
    )
    assert queued.recipients == ("x@remote.test", "y@remote.test")
    assert [q.id for q in await store.list_queue()] == [queued.id]
    item, body = await store.get_queued(queued.id)
    assert body == raw and item.dsn == '{"ret":"HDRS"}'
    await store.remove_queued(queued.id)
    assert await store.list_queue() == []
    with pytest.raises(NotFound):
        await store.get_queued(queued.id)


async def test_deliver_and_queue_in_one_commit(store: Store) -> None:
    a = await make_account(store)
    local_raw = b"Return-Path: <x@remote.test>\r\n" + message("both")
    copy = OutboundCopy(a.id, "x@remote.test", ("far@remote.test",), message("both"), "{}")
    results, queued = await store.deliver_and_queue([a.id], local_raw, copy)
    assert set(results) == {a.id} and queued is not None
    inbox = await store.get_folder(a.id, "INBOX")
    assert await store.read_message(a.id, inbox.id, results[a.id].uid) == local_raw
    assert (await store.get_queued(queued.id))[1] == message("both")
    results, queued = await store.deliver_and_queue([], b"", copy)
    assert results == {} and queued is not None
    assert len(await store.list_queue()) == 2
    assert await store.deliver_and_queue([], b"", None) == ({}, None)


async def test_batch_reads_and_entries(store: Store) -> None:
    account = await make_account(store)
    big = message("big", body="x" * 300_000)
    for raw in (message("a"), big, message("c")):
        await store.append(account.id, "INBOX", raw)
    inbox = await store.get_folder(account.id, "INBOX")
    found = await store.read_messages(account.id, inbox.id, [3, 1, 2, 99])
    assert found == {1: message("a"), 2: big, 3: message("c")}
    assert [e.uid for e in await store.get_entries(account.id, inbox.id, [3, 1, 42])] == [1, 3]
    other = await make_account(store, "other@example.test")
    with pytest.raises(NotFound):
        await store.read_messages(other.id, inbox.id, [1])


async def test_search_text_finds_substrings_in_header_and_body(store: Store) -> None:
    account = await make_account(store)
    await store.append(account.id, "INBOX", message("Quarterly report", body="Revenue grew"))
    await store.append(account.id, "INBOX", message("=?utf-8?q?Gr=C3=BC=C3=9Fe?=", body="Hallo"))
    await store.append(
        account.id, "INBOX", message("lunch", body="pizza at noon", sender="zz@x.test")
    )
    inbox = await store.get_folder(account.id, "INBOX")

    async def find(needle: str, **kw: Any) -> set[int]:
        # The same answer from a scan and from the index, whichever serves it.
        scanned = await store.search_text(account.id, inbox.id, needle, **kw)
        await store.sync_search_index()  # type: ignore[attr-defined]
        assert await store.search_text(account.id, inbox.id, needle, **kw) == scanned
        return scanned

    assert await find("REVENUE") == {1}
    assert await find("revenue", header=True, body=False) == set()
    assert await find("quarterly", header=True, body=False) == {1}
    assert await find("grüße") == {2}  # decoded encoded-word subject
    assert await find("zz@x") == {3}
    assert await find("no") == {3}  # shorter than a trigram: scanned
    assert await find("x.test", body=False) == {1, 2, 3}
    assert await find("pizza", uids=[1, 2]) == set()
    other = await make_account(store, "other@example.test")
    await store.append(other.id, "INBOX", message("Quarterly report", body="Revenue grew"))
    assert await find("revenue") == {1}
    with pytest.raises(NotFound):
        await store.search_text(other.id, inbox.id, "revenue")


async def test_folder_counts_stay_exact(store: Store) -> None:
    account = await make_account(store)
    for i in range(6):
        await store.append(account.id, "INBOX", message(f"m{i}"), flags=["\\Seen"] if i % 2 else [])
    inbox = await store.get_folder(account.id, "INBOX")
    await store.store_flags(account.id, inbox.id, [1, 2, 3], ["\\Deleted", "\\Seen"], FlagMode.ADD)
    await store.store_flags(account.id, inbox.id, [4], ["\\Seen"], FlagMode.REMOVE)
    await store.copy(account.id, inbox.id, [5, 6], "Archive")
    await store.move(account.id, inbox.id, [4], "Archive")
    await store.expunge(account.id, inbox.id, [1])
    for name in ("INBOX", "Archive"):
        folder = await store.get_folder(account.id, name)
        entries = await store.list_entries(account.id, folder.id)
        status = await store.folder_status(account.id, name)
        assert status.messages == len(entries)
        assert status.unseen == sum("\\Seen" not in e.flags for e in entries)
        assert status.deleted == sum("\\Deleted" in e.flags for e in entries)
        assert status.size == sum(e.size for e in entries)


async def test_summaries_by_uid_and_by_conversation(store: Store) -> None:
    account = await make_account(store)
    root = message("plan")
    reply = (
        b"From: b@x.test\r\nSubject: Re: plan\r\nMessage-ID: <r1@x.test>\r\n"
        b"In-Reply-To: <plan@x.test>\r\nReferences: <plan@x.test>\r\n\r\nok\r\n"
    )
    for raw in (root, message("other"), reply):
        await store.append(account.id, "INBOX", raw)
    inbox = await store.get_folder(account.id, "INBOX")
    assert [s.subject for s in await store.get_summaries(account.id, inbox.id, [3, 1, 9])] == [
        "plan",
        "Re: plan",
    ]
    [first] = await store.get_summaries(account.id, inbox.id, [1])
    thread = await store.thread_summaries(account.id, inbox.id, first.thread_key)
    assert [s.entry.uid for s in thread] == [1, 3]
