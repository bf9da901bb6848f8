"""Reading, attachments, inline images, actions, folders, search and tenancy."""

from __future__ import annotations

import base64
import re

from webmail_world import ALICE, BOB, World, login, message

from mailwarden.store.base import FlagMode

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def with_attachments() -> bytes:
    pdf = base64.encodebytes(b"%PDF-1.4 fake").decode()
    return (
        "From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\n"
        "Subject: =?utf-8?q?R=C3=A9sum=C3=A9_attached?=\r\n"
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <att@remote.test>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the files.\r\n"
        "--b1\r\nContent-Type: application/pdf\r\n"
        "Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20final.pdf\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{pdf}"
        '--b1\r\nContent-Type: text/plain; name="=?utf-8?b?w7xiZXIudHh0?="\r\n'
        "Content-Disposition: attachment\r\n\r\nplain file\r\n"
        "--b1--\r\n"
    ).encode()


def html_with_images() -> bytes:
    png = base64.encodebytes(PNG).decode()
    return (
        "From: News <news@remote.test>\r\nTo: alice@example.test\r\nSubject: Newsletter\r\n"
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <news@remote.test>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary="r"\r\n\r\n'
        "--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        '<p>Hello <b>reader</b></p><img src="cid:logo@x" alt="logo">'
        '<img src="https://tracker.example/pixel.gif" alt="">'
        '<a href="https://example.org/">link</a>\r\n'
        "--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{png}"
        "--r--\r\n"
    ).encode()


async def test_list_and_read_with_attachments(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    uid = await world.deliver(ALICE[0], with_attachments())
    async with world.client() as client:
        await login(client)
        page = await client.get(f"/mail/{inbox}")
        assert page.status_code == 200
        assert "Résumé attached" in page.text and 'class="msg unread' in page.text
        assert "content-security-policy" in page.headers
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        read = await client.get(f"/mail/{inbox}/{uid}")
        assert read.status_code == 200
        assert "See the files." in read.text
        assert "résumé final.pdf" in read.text and "über.txt" in read.text
        part = re.search(rf'href="(/mail/{inbox}/{uid}/part/[0-9.]+)" download>résumé', read.text)
        assert part
        download = await client.get(part.group(1))
        assert download.content == b"%PDF-1.4 fake"
        assert download.headers["content-type"] == "application/pdf"
        disposition = download.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20final.pdf" in disposition
        assert download.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in download.headers["content-security-policy"]
        # Reading marked it \\Seen.
        page = await client.get(f"/mail/{inbox}")
        assert 'class="msg unread' not in page.text


async def test_html_body_is_sanitised_and_framed(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    uid = await world.deliver(ALICE[0], html_with_images())
    async with world.client() as client:
        await login(client)
        read = await client.get(f"/mail/{inbox}/{uid}")
        assert 'sandbox="allow-same-origin allow-popups' in read.text
        assert "1 remote image was blocked" in read.text
        body = await client.get(f"/mail/{inbox}/{uid}/body")
        csp = body.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp and "sandbox" in csp
        assert "https:" not in csp
        assert "tracker.example" not in body.text
        cid = re.search(r'src="(/mail/[^"]+/cid/[^"]+)"', body.text)
        assert cid, body.text
        image = await client.get(cid.group(1))
        assert image.content == PNG and image.headers["content-type"] == "image/png"
        assert 'target="_blank"' in body.text and "noopener" in body.text
        allowed = await client.get(f"/mail/{inbox}/{uid}/body?images=1")
        assert "https://tracker.example/pixel.gif" in allowed.text
        assert "img-src 'self' data: https: http:" in allowed.headers["content-security-policy"]


async def test_trusting_a_sender_loads_images(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    uid = await world.deliver(ALICE[0], html_with_images())
    async with world.client() as client:
        csrf = await login(client)
        r = await client.post(
            f"/mail/{inbox}/action", data={"csrf": csrf, "uid": str(uid), "action": "trust"}
        )
        assert r.status_code == 303
        body = await client.get(f"/mail/{inbox}/{uid}/body")
        assert "tracker.example" in body.text


async def test_actions_flag_move_delete_archive_junk(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    trash = await world.folder_id(ALICE[0], "Trash")
    archive = await world.folder_id(ALICE[0], "Archive")
    junk = await world.folder_id(ALICE[0], "Junk")
    uids = [await world.deliver(ALICE[0], message(f"Message {i}")) for i in range(5)]
    alice = await world.account(ALICE[0])
    async with world.client() as client:
        csrf = await login(client)

        async def act(folder: int, action: str, chosen: list[int], **extra: str):
            data = {"csrf": csrf, "action": action, "uid": [str(u) for u in chosen], **extra}
            r = await client.post(f"/mail/{folder}/action", data=data)
            assert r.status_code == 303, r.text
            return r

        assert (
            await client.post(f"/mail/{inbox}/action", data={"action": "read"})
        ).status_code == 403
        await act(inbox, "flag", uids[:2])
        await act(inbox, "read", uids)
        entries = {e.uid: e for e in await world.store.list_entries(alice.id, inbox)}
        assert "\\Flagged" in entries[uids[0]].flags and "\\Seen" in entries[uids[4]].flags
        await act(inbox, "unread", [uids[4]])
        await act(inbox, "delete", [uids[0]])
        await act(inbox, "archive", [uids[1]])
        await act(inbox, "junk", [uids[2]])
        await act(inbox, "move", [uids[3]], dest=str(archive))
        counts = {
            name: (await world.store.folder_status(alice.id, name)).messages
            for name in ("INBOX", "Trash", "Archive", "Junk")
        }
        assert counts == {"INBOX": 1, "Trash": 1, "Archive": 2, "Junk": 1}
        junked = await world.store.list_entries(alice.id, junk)
        assert "$Junk" in junked[0].flags
        # Deleting in Trash removes for good.
        await act(trash, "delete", [e.uid for e in await world.store.list_entries(alice.id, trash)])
        assert (await world.store.folder_status(alice.id, "Trash")).messages == 0
        # Moving to a folder of another account is refused as unknown.
        bob_inbox = await world.folder_id(BOB[0])
        r = await client.post(
            f"/mail/{inbox}/action",
            data={"csrf": csrf, "action": "move", "uid": str(uids[4]), "dest": str(bob_inbox)},
        )
        assert r.status_code == 404


async def test_paging_and_sorting(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    for i in range(30):
        await world.deliver(ALICE[0], message(f"Subject {i:02d}", sender=f"s{i:02d}@remote.test"))
    async with world.client() as client:
        csrf = await login(client)
        await client.post(
            "/settings",
            data={"csrf": csrf, "page_size": "25", "prefer_html": "1", "identity": ALICE[0]},
        )
        first = await client.get(f"/mail/{inbox}?sort=subject&dir=asc")
        assert "Subject 00" in first.text and "Subject 29" not in first.text
        assert "Page 1 of 2" in first.text
        second = await client.get(f"/mail/{inbox}?sort=subject&dir=asc&page=2")
        assert "Subject 29" in second.text and "Subject 00" not in second.text
        for key in ("from", "size", "date", "bogus"):
            assert (await client.get(f"/mail/{inbox}?sort={key}")).status_code == 200


async def test_conversations_group_replies(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    await world.deliver(ALICE[0], message("Plan", extra=""))
    root = (await world.store.get_facts((await world.account(ALICE[0])).id, inbox, [1]))[1]
    for i in range(2):
        await world.deliver(
            ALICE[0],
            message(
                f"Re: Plan {i}",
                extra=f"In-Reply-To: {root.message_id}\r\nReferences: {root.message_id}\r\n",
            ),
        )
    async with world.client() as client:
        await login(client)
        page = await client.get(f"/mail/{inbox}?threads=1")
        assert '<span class="thread">(3)</span>' in page.text


async def test_folders_create_rename_delete(world: World) -> None:
    async with world.client() as client:
        csrf = await login(client)
        await client.post("/folders", data={"csrf": csrf, "action": "create", "name": "Projects"})
        alice = await world.account(ALICE[0])
        names = [f.name for f in await world.store.list_folders(alice.id)]
        assert "Projects" in names
        fid = await world.folder_id(ALICE[0], "Projects")
        r = await client.post(
            "/folders", data={"csrf": csrf, "action": "rename", "fid": str(fid), "name": "Work"}
        )
        assert r.status_code == 303
        assert "Work" in [f.name for f in await world.store.list_folders(alice.id)]
        dup = await client.post(
            "/folders",
            data={"csrf": csrf, "action": "create", "name": "Work"},
            follow_redirects=True,
        )
        assert "exists already" in dup.text
        inbox = await world.folder_id(ALICE[0])
        special = await client.post(
            "/folders",
            data={"csrf": csrf, "action": "delete", "fid": str(inbox)},
            follow_redirects=True,
        )
        assert "cannot be renamed or deleted" in special.text
        await client.post("/folders", data={"csrf": csrf, "action": "delete", "fid": str(fid)})
        assert "Work" not in [f.name for f in await world.store.list_folders(alice.id)]


async def test_search_by_fields_body_and_dates(world: World) -> None:
    await world.deliver(ALICE[0], message("Invoice 42", body="Total due: 99 euros"))
    await world.deliver(ALICE[0], message("Lunch", body="Pizza?", sender="dave@remote.test"))
    await world.deliver(
        ALICE[0], message("Old", body="ancient").replace(b"2023", b"2001"), folder="Archive"
    )
    async with world.client() as client:
        await login(client)

        async def found(query: str) -> set[str]:
            page = await client.get(f"/search?{query}")
            assert page.status_code == 200
            return set(re.findall(r'class="open"[^>]*>([^<]+)<', page.text))

        assert await found("q=invoice") == {"Invoice 42"}
        assert await found("body=euros") == {"Invoice 42"}
        assert await found("q=pizza") == {"Lunch"}
        assert await found("from=dave") == {"Lunch"}
        assert await found("to=alice&subject=lunch") == {"Lunch"}
        assert await found("before=2010-01-01") == {"Old"}
        assert await found("since=2020-01-01&q=e") == {"Invoice 42", "Lunch"}
        inbox = await world.folder_id(ALICE[0])
        assert await found(f"before=2010-01-01&folder={inbox}") == set()


async def test_one_account_cannot_reach_another(world: World) -> None:
    """Every URL that names a folder, message, part or draft of Bob fails for Alice."""
    bob_inbox = await world.folder_id(BOB[0])
    bob_drafts = await world.folder_id(BOB[0], "Drafts")
    uid = await world.deliver(BOB[0], with_attachments())
    await world.deliver(BOB[0], html_with_images())
    async with world.client() as client:
        csrf = await login(client, ALICE)
        for url in (
            f"/mail/{bob_inbox}",
            f"/mail/{bob_inbox}/{uid}",
            f"/mail/{bob_inbox}/{uid}/body",
            f"/mail/{bob_inbox}/{uid}/raw",
            f"/mail/{bob_inbox}/{uid}/part/2",
            f"/mail/{bob_inbox}/2/cid/logo%40x",
            f"/compose?reply={bob_inbox}.{uid}",
            f"/compose?forward={bob_inbox}.{uid}",
            f"/compose?forward={bob_inbox}.{uid}&attach=1",
            f"/compose?draft={bob_drafts}.1",
            f"/search?folder={bob_inbox}&q=a",
        ):
            r = await client.get(url)
            assert r.status_code == 404, url
            assert "carol" not in r.text.lower() and "pdf" not in r.text.lower(), url
        for url, data in (
            (f"/mail/{bob_inbox}/action", {"action": "delete", "uid": str(uid)}),
            ("/folders", {"action": "delete", "fid": str(bob_inbox)}),
            (
                "/compose",
                {
                    "action": "send",
                    "from": ALICE[0],
                    "to": ALICE[0],
                    "carry": f"{bob_inbox}.{uid}.2:x",
                },
            ),
        ):
            r = await client.post(url, data={"csrf": csrf, **data})
            assert r.status_code in (303, 404), url
        bob = await world.account(BOB[0])
        assert (await world.store.folder_status(bob.id, "INBOX")).messages == 2
        alice = await world.account(ALICE[0])
        assert (await world.store.folder_status(alice.id, "INBOX")).messages == 0


async def test_counts_json_and_unknown_pages(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    await world.deliver(ALICE[0], message())
    async with world.client() as client:
        await login(client)
        counts = (await client.get("/mail/counts")).json()
        assert counts[str(inbox)] == {"unseen": 1, "messages": 1}
        missing = await client.get(f"/mail/{inbox}/999")
        assert missing.status_code == 404 and "nothing here" in missing.text.lower()


async def test_static_files_are_served(world: World) -> None:
    async with world.client() as client:
        css = await client.get("/static/webmail/webmail.css")
        js = await client.get("/static/webmail/webmail.js")
        assert css.status_code == js.status_code == 200
        assert js.headers["content-type"].startswith("text/javascript")


async def test_flag_changes_elsewhere_show_in_the_list(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    uid = await world.deliver(ALICE[0], message("Flag me"))
    alice = await world.account(ALICE[0])
    await world.store.store_flags(alice.id, inbox, [uid], ["\\Flagged"], FlagMode.ADD)
    async with world.client() as client:
        await login(client)
        page = await client.get(f"/mail/{inbox}")
        assert 'class="msg unread flagged"' in page.text
