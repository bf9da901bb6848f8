"""Live updates: server-sent events fed by the store's change notifications."""

from __future__ import annotations

import asyncio
import json

from webmail_world import ALICE, World, login, message


async def _open_stream(world: World, cookie: str):
    """Drive the app at the ASGI level so the stream can be read while it runs."""
    chunks: asyncio.Queue[dict] = asyncio.Queue()
    disconnect = asyncio.Event()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/mail/events",
        "raw_path": b"/mail/events",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"mail.example.test"), (b"cookie", f"mw_session={cookie}".encode())],
        "client": ("203.0.113.5", 40000),
        "server": ("mail.example.test", 80),
    }
    sent_request = False

    async def receive() -> dict:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(msg: dict) -> None:
        await chunks.put(msg)

    task = asyncio.create_task(world.app(scope, receive, send))
    return chunks, disconnect, task


async def _next_body(chunks: asyncio.Queue[dict]) -> bytes:
    while True:
        msg = await asyncio.wait_for(chunks.get(), 10)
        if msg["type"] == "http.response.body" and msg.get("body"):
            return msg["body"]


async def test_new_mail_is_pushed(world: World) -> None:
    inbox = await world.folder_id(ALICE[0])
    async with world.client() as client:
        await login(client)
        cookie = client.cookies["mw_session"]
    chunks, disconnect, task = await _open_stream(world, cookie)
    start = await asyncio.wait_for(chunks.get(), 10)
    assert start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert (await _next_body(chunks)).startswith(b"retry:")
    await world.deliver(ALICE[0], message("Live"))
    event = await _next_body(chunks)
    assert event.startswith(b"event: change\ndata: ")
    payload = json.loads(event.split(b"data: ", 1)[1])
    assert inbox in payload["folders"]
    disconnect.set()
    await asyncio.wait_for(task, 10)
    session = next(iter(world.deps.sessions._by_key.values()))  # type: ignore[attr-defined]
    assert session.streams == 0
    # The stream's subscription is gone; the folder cache keeps its own one.
    world.deps.folder_cache.close()
    assert not world.store.changes._subs


async def test_streams_per_session_are_bounded(world: World) -> None:
    async with world.client() as client:
        await login(client)
        cookie = client.cookies["mw_session"]
    opened = [await _open_stream(world, cookie) for _ in range(4)]
    for chunks, _, _ in opened:
        assert (await asyncio.wait_for(chunks.get(), 10))["status"] == 200
    chunks, disconnect, task = await _open_stream(world, cookie)
    assert (await asyncio.wait_for(chunks.get(), 10))["status"] == 429
    disconnect.set()
    await asyncio.wait_for(task, 10)
    for _, stop, running in opened:
        stop.set()
        await asyncio.wait_for(running, 10)


async def test_events_need_a_session(world: World) -> None:
    async with world.client() as client:
        r = await client.get("/mail/events", headers={"Accept": "text/event-stream"})
        assert r.status_code == 303
