"""Fixtures of the status-page tests: a hand-set clock, a service, an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from argon2 import PasswordHasher

from mailwarden.web.status.app import create_app
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import StatusSettings

CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


class RecordingSender:
    """A MailSender that keeps messages (for tests not about SMTP itself)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    def send(self, message: object, recipient: str) -> None:
        self.sent.append((recipient, message))


class RecordingPoster:
    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.posts.append((url, body, headers))


class RecordingDrain:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.acknowledge = True

    async def set_drain(self, node: object, request: object) -> bool:
        self.calls.append((node.url, request))  # type: ignore[attr-defined]
        return self.acknowledge


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 4, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings() -> StatusSettings:
    return StatusSettings(public_url="https://status.example.test", page_name="Example Status")


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def poster() -> RecordingPoster:
    return RecordingPoster()


@pytest.fixture
def drain() -> RecordingDrain:
    return RecordingDrain()


@pytest.fixture
def service(
    tmp_path,
    clock: FakeClock,
    settings: StatusSettings,
    sender: RecordingSender,
    poster: RecordingPoster,
    drain: RecordingDrain,
) -> Iterator[StatusService]:
    svc = StatusService.open(
        settings,
        clock=clock,
        database=str(tmp_path / "status.sqlite3"),
        sender=sender,
        poster=poster,
        drain=drain,
        probes=[],
        hasher=CHEAP_HASHER,
    )
    svc.add_cluster("test", "Cluster A")
    yield svc
    svc.close()


@pytest.fixture
async def client(service: StatusService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(service)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://status.test") as c:
        yield c
