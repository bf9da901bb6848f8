"""Webmail in a real browser (Debian's Chromium through Playwright).

One server (uvicorn on 127.0.0.1, an ephemeral port, in its own thread and
event loop, over a real SQLite store and the real auth door) and one browser
walk the whole flow: log in, read a message with an attachment and download
it, compose and send with an attachment and see it arrive in the other
account, reply and see the reply appear without reloading (server-sent
events), move, delete, search, change a setting, keyboard shortcut, phone
layout.  Screenshots of the main screens go to ``test-artifacts/webmail/``.
"""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import types
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailwarden.admin.drain import DrainSwitch
from mailwarden.admin.traffic import TrafficRecorder
from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
from mailwarden.auth.service import AuthService
from mailwarden.delivery import Delivery, SendingLimits
from mailwarden.mail.address import Address
from mailwarden.store.sqlite import SqliteStore
from mailwarden.web.app import make_app
from mailwarden.web.webmail import WebmailDeps
from mailwarden.web.webmail.prefs import SqlitePrefs
from mailwarden.web.webmail.send import DeliverySubmitter
from mailwarden.web.webmail.sessions import MemorySessions

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "webmail"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

sync_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no chromium; make test installs it and fails on skips"
)

ALICE = ("alice@example.test", "alice password 1")
BOB = ("bob@example.test", "bob password 22")
TIMEOUT_MS = 10_000


def _attachment_message() -> bytes:
    pdf = base64.encodebytes(b"%PDF-1.4 quarterly").decode()
    return (
        "From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\n"
        "Subject: Quarterly report\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        "Message-ID: <q@remote.test>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe report is attached.\r\n"
        "--b\r\nContent-Type: application/pdf\r\n"
        "Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{pdf}--b--\r\n"
    ).encode()


def _html_message() -> bytes:
    return (
        b"From: News <news@remote.test>\r\nTo: alice@example.test\r\nSubject: Newsletter\r\n"
        b"Date: Wed, 15 Nov 2023 08:00:00 +0000\r\nMessage-ID: <n@remote.test>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<h2>Hello reader</h2><p>News of the week.</p>"
        b'<img src="https://tracker.example/p.gif"><script>document.title="pwned"</script>\r\n'
    )


class Server:
    """The webmail over a real store, served by uvicorn in a thread with its own loop."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.failure: BaseException | None = None
        self.url = ""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread
            self.failure = exc
            self.ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        store = await SqliteStore.open(self.tmp / "db.sqlite", self.tmp / "blobs")
        self.store = store
        hasher = PasswordHasher(HashParams(memory_kib=64, time_cost=1, parallelism=1))
        await store.add_domain("example.test")
        for address, password in (ALICE, BOB):
            await store.add_account(Address.parse(address), hasher.hash(password))
        alice = await store.find_account(ALICE[0])
        assert alice is not None
        await store.append(alice.id, "INBOX", _html_message())
        await store.append(alice.id, "INBOX", _attachment_message())
        auth = AuthService(store, hasher, VerifyPool(2, 8))
        prefs = SqlitePrefs(self.tmp / "webmail.db")
        deps = WebmailDeps(
            store=store,
            auth=auth,
            sessions=MemorySessions(idle=3600.0),
            prefs=prefs,
            submitter=DeliverySubmitter(
                store, Delivery(store, "mail.example.test"), SendingLimits(100, 1000)
            ),
            hostname="mail.example.test",
        )
        node = types.SimpleNamespace(
            store=store,
            auth=auth,
            draining=False,
            drain=DrainSwitch(self.tmp),
            traffic=TrafficRecorder(self.tmp),
        )
        config = uvicorn.Config(
            make_app(node, deps),  # type: ignore[arg-type]
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        web = uvicorn.Server(config)
        task = asyncio.create_task(web.serve())
        while not web.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = web.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.ready.set()
        try:
            await self.stop.wait()
        finally:
            web.should_exit = True
            await task
            prefs.close()
            await auth.close()
            await store.close()

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's loop (to look at the store)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(20), "server did not start"
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(15)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.close()


def _login(page: Any, url: str, who: tuple[str, str]) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Email address").fill(who[0])
    page.get_by_label("Password", exact=True).fill(who[1])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/mail/\d+$"))


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_webmail_end_to_end(server: Server, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    upload = tmp_path / "notes ü.txt"
    upload.write_text("meeting notes\n")
    csp_errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            alice_ctx = browser.new_context(
                viewport={"width": 1280, "height": 860}, accept_downloads=True
            )
            alice_ctx.set_default_timeout(TIMEOUT_MS)
            page = alice_ctx.new_page()
            page.on(
                "console",
                lambda m: (
                    csp_errors.append(m.text) if "Content Security Policy" in m.text else None
                ),
            )
            page.goto(f"{server.url}/login")
            _shot(page, "login")

            # Log in and see the inbox with both messages.
            _login(page, server.url, ALICE)
            rows = page.locator("#list tr.msg")
            assert rows.count() == 2
            _shot(page, "inbox")

            # Read the message with an attachment, and download it.
            page.get_by_role("link", name="Quarterly report").click()
            page.get_by_text("The report is attached.").wait_for()
            with page.expect_download() as info:
                page.get_by_role("link", name="résumé.pdf").click()
            download = info.value
            assert download.suggested_filename == "résumé.pdf"
            assert Path(download.path()).read_bytes() == b"%PDF-1.4 quarterly"
            _shot(page, "message")

            # The HTML newsletter: sanitised, framed, remote image blocked.
            page.get_by_role("link", name="Back to the list").click()
            page.get_by_role("link", name="Newsletter").click()
            frame = page.frame_locator("iframe.body-frame")
            frame.get_by_text("Hello reader").wait_for()
            assert page.get_by_text("1 remote image was blocked").is_visible()
            assert "pwned" not in page.title()
            _shot(page, "html-message")

            # Compose and send to Bob with an attachment.
            page.get_by_role("link", name="Compose").click()
            page.get_by_label("To", exact=True).fill(BOB[0])
            page.get_by_label("Subject").fill("Meeting notes")
            page.get_by_label("Message").fill("Notes attached.\n")
            page.get_by_label("Add files").set_input_files(str(upload))
            _shot(page, "compose")
            page.get_by_role("button", name="Send").click()
            page.get_by_text("Message sent.").wait_for()

            # Bob sees it arrive with its attachment, and replies.
            bob_ctx = browser.new_context(viewport={"width": 1100, "height": 800})
            bob_ctx.set_default_timeout(TIMEOUT_MS)
            bob = bob_ctx.new_page()
            _login(bob, server.url, BOB)
            bob.get_by_role("link", name="Meeting notes").click()
            bob.get_by_role("link", name="notes ü.txt").wait_for()
            _shot(bob, "bob-message")

            # Alice waits on her inbox: the reply must appear without a reload.
            page.get_by_role("link", name="Inbox").first.click()
            page.wait_for_url(re.compile(r"/mail/\d+$"))
            page.locator("body[data-live=on]").wait_for(state="attached")  # stream connected
            url_before = page.url
            bob.get_by_role("link", name="Reply", exact=True).click()
            body = bob.get_by_label("Message")
            body.fill("Thanks!\n" + body.input_value())
            bob.get_by_role("button", name="Send").click()
            bob.get_by_text("Message sent.").wait_for()
            page.locator("#list a.open", has_text="Re: Meeting notes").wait_for()
            assert page.url == url_before
            assert page.locator("#list tr.msg").count() == 3
            _shot(page, "inbox-live")

            # Move the reply to Archive.
            row = page.locator("#list tr.msg", has_text="Re: Meeting notes")
            row.locator("input[name=uid]").check()
            page.locator("#dest-list").select_option(label="Archive")
            page.locator("#list").get_by_role("button", name="Move").click()
            page.get_by_text("1 message moved.").wait_for()
            assert page.locator("#list tr.msg", has_text="Re: Meeting notes").count() == 0

            # Delete the newsletter from the reading view: it goes to Trash.
            page.get_by_role("link", name="Newsletter").click()
            page.locator(".msgactions").get_by_role("button", name="Delete").click()
            page.get_by_text("1 message moved to Trash.").wait_for()
            page.locator(".folders a.role-trash").click()
            page.locator("#list a.open", has_text="Newsletter").wait_for()

            # Search.
            page.get_by_label("Search mail").fill("quarterly")
            page.get_by_label("Search mail").press("Enter")
            page.get_by_role("heading", name="1 result").wait_for()
            assert page.locator("a.open", has_text="Quarterly report").count() == 1
            _shot(page, "search")

            # Change a setting: the signature shows up in a new message.
            page.get_by_role("link", name="Settings").click()
            page.get_by_label("Added below new messages and replies").fill("Alice from Wonderland")
            page.get_by_role("button", name="Save settings").click()
            page.get_by_text("Settings saved.").wait_for()
            _shot(page, "settings")
            page.get_by_role("link", name="Inbox").first.click()
            page.wait_for_url(re.compile(r"/mail/\d+$"))
            page.locator("#list").wait_for()
            page.keyboard.press("c")  # keyboard shortcut: compose
            page.wait_for_url(re.compile(r"/compose$"))
            assert "Alice from Wonderland" in page.get_by_label("Message").input_value()

            # A phone-sized screen.
            phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
            phone.set_default_timeout(TIMEOUT_MS)
            small = phone.new_page()
            _login(small, server.url, ALICE)
            width = small.evaluate("document.documentElement.scrollWidth")
            _shot(small, "inbox-phone")
            wide = small.evaluate(
                "Array.from(document.querySelectorAll('body *')).filter("
                "e => e.getBoundingClientRect().right > 392).slice(0, 8)"
                ".map(e => e.tagName + '.' + e.className + '#' + e.id + ':' +"
                " Math.round(e.getBoundingClientRect().right))"
            )
            assert width <= 392, (width, wide)
            phone.close()
            bob_ctx.close()
            alice_ctx.close()
        finally:
            browser.close()
    assert csp_errors == []
    arrived = server.call(_bob_inbox_subjects(server))
    assert arrived == ["Meeting notes"]


async def _bob_inbox_subjects(server: Server) -> list[str]:
    bob = await server.store.find_account(BOB[0])
    assert bob is not None
    inbox = await server.store.get_folder(bob.id, "INBOX")
    _total, page = await server.store.list_summaries(bob.id, inbox.id)
    return [s.subject for s in page]
