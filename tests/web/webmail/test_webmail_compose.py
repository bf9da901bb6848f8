"""Compose, reply, forward, drafts, sending under submission rules, and settings."""

from __future__ import annotations

import email
import re
from email import policy

from test_webmail_mail import with_attachments
from webmail_world import ALICE, BOB, World, login, message

from mailwarden.auth.service import Accepted, Peer, Rejected, Service


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


async def _only(world: World, address: str, folder: str = "INBOX") -> bytes:
    account = await world.account(address)
    fid = await world.folder_id(address, folder)
    entries = await world.store.list_entries(account.id, fid)
    assert len(entries) == 1, entries
    return await world.store.read_message(account.id, fid, entries[0].uid)


async def test_send_with_attachment_arrives_and_is_kept_in_sent(world: World) -> None:
    async with world.client() as client:
        csrf = await login(client)
        page = await client.get("/compose")
        assert page.status_code == 200 and 'name="files"' in page.text
        r = await client.post(
            "/compose",
            data={
                "csrf": csrf,
                "action": "send",
                "from": ALICE[0],
                "to": f"Bob <{BOB[0]}>",
                "bcc": "secret@remote.test",
                "subject": "Report ünïcode",
                "body": "Here it is.\nCheers",
            },
            files={"files": ("résumé.txt", b"file body", "text/plain")},
        )
        assert r.status_code == 303 and r.headers["location"] == "/mail", r.text
    received = _parse(await _only(world, BOB[0]))
    assert received["Subject"] == "Report ünïcode"
    assert received["From"].addresses[0].addr_spec == ALICE[0]
    assert received["Message-ID"] and received["Date"]
    assert received["Bcc"] is None
    assert received["Received"] is not None  # delivered through mailwarden.delivery
    names = [p.get_filename() for p in received.iter_attachments()]
    assert names == ["résumé.txt"]
    assert received.get_body(("plain",)).get_content().startswith("Here it is.")
    sent = _parse(await _only(world, ALICE[0], "Sent"))
    assert sent["Bcc"] == "secret@remote.test" and sent["Message-ID"] == received["Message-ID"]
    queue = await world.store.list_queue()
    assert [q.recipients for q in queue] == [("secret@remote.test",)]
    assert (
        b"secret@remote.test"
        not in (await world.store.get_queued(queue[0].id))[1].split(b"\r\n\r\n", 1)[0]
    )


async def test_reply_threads_and_marks_answered(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    uid = await world.deliver(
        ALICE[0],
        message(
            "Question",
            body="Are you there?",
            sender=f"Bob <{BOB[0]}>",
            to=f"{ALICE[0]}, carol@remote.test",
        ),
    )
    alice = await world.account(ALICE[0])
    original = (await world.store.get_facts(alice.id, inbox, [uid]))[uid]
    async with world.client() as client:
        csrf = await login(client)
        form = await client.get(f"/compose?reply={inbox}.{uid}&all=1")
        assert "Re: Question" in form.text and "&gt; Are you there?" in form.text
        assert "carol@remote.test" in form.text  # reply-all puts others in Cc
        to = re.search(r'id="to" name="to" type="text" value="([^"]*)"', form.text).group(1)
        assert BOB[0] in to and ALICE[0] not in to
        irt = re.search(r'name="in_reply_to" value="([^"]*)"', form.text).group(1)
        refs = re.search(r'name="references" value="([^"]*)"', form.text).group(1)
        r = await client.post(
            "/compose",
            data={
                "csrf": csrf,
                "action": "send",
                "from": ALICE[0],
                "to": BOB[0],
                "subject": "Re: Question",
                "body": "Yes.",
                "in_reply_to": irt.replace("&lt;", "<").replace("&gt;", ">"),
                "references": refs.replace("&lt;", "<").replace("&gt;", ">"),
                "reply_ref": f"{inbox}.{uid}",
            },
        )
        assert r.status_code == 303
    reply = _parse(await _only(world, BOB[0]))
    assert reply["In-Reply-To"] == original.message_id
    assert original.message_id in reply["References"]
    entries = await world.store.list_entries(alice.id, inbox)
    assert "\\Answered" in entries[0].flags


async def test_forward_inline_carries_attachments_and_as_attachment(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    uid = await world.deliver(ALICE[0], with_attachments())
    async with world.client() as client:
        csrf = await login(client)
        form = await client.get(f"/compose?forward={inbox}.{uid}")
        assert "Fwd: Résumé attached" in form.text and "Forwarded message" in form.text
        carry = re.findall(r'name="carry" value="([^"]+)"', form.text)
        assert len(carry) == 2
        await client.post(
            "/compose",
            data={
                "csrf": csrf,
                "action": "send",
                "from": ALICE[0],
                "to": BOB[0],
                "subject": "Fwd",
                "body": "fyi",
                "carry": carry,
                "forward_ref": f"{inbox}.{uid}",
            },
        )
        form = await client.get(f"/compose?forward={inbox}.{uid}&attach=1")
        carry2 = re.findall(r'name="carry" value="([^"]+)"', form.text)
        assert carry2 == [f"{inbox}.{uid}.msg:Résumé attached.eml"]
        await client.post(
            "/compose",
            data={
                "csrf": csrf,
                "action": "send",
                "from": ALICE[0],
                "to": BOB[0],
                "subject": "Fwd 2",
                "body": "see attached",
                "carry": carry2,
            },
        )
    bob = await world.account(BOB[0])
    bob_inbox = await world.folder_id(BOB[0])
    entries = await world.store.list_entries(bob.id, bob_inbox)
    assert len(entries) == 2
    first = _parse(await world.store.read_message(bob.id, bob_inbox, entries[0].uid))
    names = sorted(p.get_filename() for p in first.iter_attachments())
    assert names == ["résumé final.pdf", "über.txt"]
    pdf = next(p for p in first.iter_attachments() if p.get_filename().endswith(".pdf"))
    assert pdf.get_content() == b"%PDF-1.4 fake"
    second = _parse(await world.store.read_message(bob.id, bob_inbox, entries[1].uid))
    [attached] = list(second.iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    assert "Résumé attached" in str(attached.get_content()["Subject"])
    alice = await world.account(ALICE[0])
    assert "$Forwarded" in (await world.store.list_entries(alice.id, inbox))[0].flags


async def test_drafts_save_autosave_reopen_and_send(world: World) -> None:
    drafts = await world.folder_id(ALICE[0], "Drafts")
    alice = await world.account(ALICE[0])
    async with world.client() as client:
        csrf = await login(client)
        auto = await client.post(
            "/compose/autosave",
            data={"from": ALICE[0], "to": "half-typed", "subject": "Draft one", "body": "wip"},
            headers={"X-CSRF-Token": csrf},
        )
        assert auto.status_code == 200, auto.text
        first = auto.json()["draft"]
        saved = await client.post(
            "/compose",
            data={
                "csrf": csrf,
                "action": "save",
                "from": ALICE[0],
                "to": BOB[0],
                "subject": "Draft two",
                "body": "more",
                "draft_ref": first,
            },
            files={"files": ("notes.txt", b"notes", "text/plain")},
        )
        assert saved.status_code == 303
        assert saved.headers["location"].startswith(f"/compose?draft={drafts}.")
        entries = await world.store.list_entries(alice.id, drafts)
        assert len(entries) == 1 and "\\Draft" in entries[0].flags
        reopened = await client.get(saved.headers["location"])
        assert "Draft two" in reopened.text and BOB[0] in reopened.text
        assert "notes.txt" in reopened.text
        carry = re.findall(r'name="carry" value="([^"]+)"', reopened.text)
        ref = re.search(r'name="draft_ref" value="(\d+)"', reopened.text).group(1)
        sent = await client.post(
            "/compose",
            data={
                "csrf": csrf,
                "action": "send",
                "from": ALICE[0],
                "to": BOB[0],
                "subject": "Draft two",
                "body": "done",
                "carry": carry,
                "draft_ref": ref,
            },
        )
        assert sent.status_code == 303
    assert await world.store.list_entries(alice.id, drafts) == []
    delivered = _parse(await _only(world, BOB[0]))
    assert [p.get_filename() for p in delivered.iter_attachments()] == ["notes.txt"]


async def test_sender_must_be_owned_and_recipients_valid(world: World) -> None:
    async with world.client() as client:
        csrf = await login(client)
        base = {"csrf": csrf, "action": "send", "subject": "x", "body": "y"}
        forged = await client.post("/compose", data={**base, "from": BOB[0], "to": BOB[0]})
        assert forged.status_code == 400 and "Choose one of your addresses" in forged.text
        bad = await client.post("/compose", data={**base, "from": ALICE[0], "to": "not an address"})
        assert bad.status_code == 400 and "Not a valid address" in bad.text
        assert 'value="not an address"' in bad.text  # the form keeps what was typed
        nobody = await client.post(
            "/compose", data={**base, "from": ALICE[0], "to": "nobody@example.test"}
        )
        assert nobody.status_code == 400 and "No such recipient" in nobody.text
        none = await client.post("/compose", data={**base, "from": ALICE[0], "to": ""})
        assert none.status_code == 400
    bob = await world.account(BOB[0])
    assert (await world.store.folder_status(bob.id, "INBOX")).messages == 0


async def test_sending_limit_applies(world: World) -> None:
    async with world.client() as client:
        csrf = await login(client)
        base = {"csrf": csrf, "action": "send", "from": ALICE[0], "to": BOB[0], "body": "b"}
        for i in range(20):
            r = await client.post("/compose", data={**base, "subject": f"m{i}"})
            assert r.status_code == 303
        over = await client.post("/compose", data={**base, "subject": "one too many"})
        assert over.status_code == 400 and "sending limit" in over.text


async def test_alias_identity_and_signature(world: World) -> None:
    await world.store.add_alias("info@example.test", [ALICE[0]])
    async with world.client() as client:
        csrf = await login(client)
        page = await client.get("/settings")
        assert "info@example.test" in page.text
        r = await client.post(
            "/settings",
            data={
                "csrf": csrf,
                f"name:{ALICE[0]}": "Alice Liddell",
                "name:info@example.test": "Info Desk",
                "identity": "info@example.test",
                "signature": "Alice\nWonderland Ltd",
                "page_size": "100",
                "threads": "1",
                "prefer_html": "1",
            },
        )
        assert r.status_code == 303
        alice = await world.account(ALICE[0])
        assert alice.display_name == "Alice Liddell"
        form = await client.get("/compose")
        assert "-- \nAlice\nWonderland Ltd" in form.text
        assert (
            '<option value="info@example.test" selected>Info Desk &lt;info@example.test&gt;'
            in form.text
        )
        await client.post(
            "/compose",
            data={
                "csrf": csrf,
                "action": "send",
                "from": "info@example.test",
                "to": BOB[0],
                "subject": "From the desk",
                "body": "hello",
            },
        )
    msg = _parse(await _only(world, BOB[0]))
    assert str(msg["From"]) == "Info Desk <info@example.test>"


async def test_app_passwords_log_in_to_imap_but_not_webmail(world: World) -> None:
    async with world.client() as client:
        csrf = await login(client)
        created = await client.post(
            "/settings/app-passwords", data={"csrf": csrf, "action": "create", "label": "phone"}
        )
        assert created.status_code == 200
        secret = re.search(r'<code class="secret">([^<]+)</code>', created.text).group(1)
        imap = Peer.from_host("198.51.100.7", Service.IMAP)
        assert isinstance(await world.auth.verify(ALICE[0], secret, imap), Accepted)
        web = Peer.from_host("198.51.100.7", Service.WEB)
        assert isinstance(await world.auth.verify(ALICE[0], secret, web, wait=False), Rejected)
        app_id = re.search(r'name="id" value="(\d+)"', created.text).group(1)
        await client.post(
            "/settings/app-passwords", data={"csrf": csrf, "action": "revoke", "id": app_id}
        )
        assert isinstance(await world.auth.verify(ALICE[0], secret, imap, wait=False), Rejected)


async def test_remember_this_device_sets_a_device_token(world: World) -> None:
    async with world.client() as client:
        await client.get("/login")
        r = await client.post(
            "/login",
            data={
                "pre_csrf": client.cookies["mw_pre"],
                "username": ALICE[0],
                "password": ALICE[1],
                "remember": "1",
            },
        )
        assert r.status_code == 303
        device = r.cookies.get("mw_device")
        assert device
        assert "HttpOnly" in next(c for c in r.headers.get_list("set-cookie") if "mw_device" in c)
        assert world.auth._token_valid(device, ALICE[0], world.auth.clock())
