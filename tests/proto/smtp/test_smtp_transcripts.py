"""Replay every SMTP transcript against the pure core: whole, byte by byte, random splits."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from smtp_transcript import FakeApp, Transcript, all_transcripts, config_for, expected_pattern

from mailwarden.proto.smtp import Closed, SmtpSession

TRANSCRIPTS = all_transcripts()

Chunker = Callable[[bytes], Iterator[bytes]]


def whole(data: bytes) -> Iterator[bytes]:
    if data:  # b"" would mean EOF
        yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def random_splits(seed: int) -> Chunker:
    def split(data: bytes) -> Iterator[bytes]:
        rng = random.Random(seed * 7919 + len(data))
        i = 0
        while i < len(data):
            n = rng.randint(1, 23)
            yield data[i : i + n]
            i += n

    return split


CHUNKERS: dict[str, Chunker] = {
    "whole": whole,
    "bytewise": bytewise,
    **{f"random{seed}": random_splits(seed) for seed in range(3)},
}


def replay(transcript: Transcript, chunker: Chunker) -> None:
    session = SmtpSession(config_for(transcript), tls="tls" in transcript.options)
    app = FakeApp()
    for number, step in enumerate(transcript.steps):
        out = b""
        for chunk in chunker(b"".join(step.send)):
            session.receive_data(chunk)
            out += app.drive(session)
        out += app.drive(session)
        app.finish_tls(session)
        pattern = expected_pattern(step.expect)
        assert pattern.fullmatch(out), f"step {number}: got {out!r}, want {pattern.pattern!r}"
        assert isinstance(session.next_event(), Closed) is step.closed, f"step {number}"
    # Nothing in a transcript may leak a password into the trace.
    assert not any("secret" in line or "AGFsaWNl" in line for line in session.take_trace())


@pytest.mark.parametrize("chunking", CHUNKERS)
@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=[t.name for t in TRANSCRIPTS])
def test_transcript(transcript: Transcript, chunking: str) -> None:
    replay(transcript, CHUNKERS[chunking])


def test_every_transcript_ends_closed() -> None:
    assert len(TRANSCRIPTS) >= 20
    for transcript in TRANSCRIPTS:
        assert transcript.steps[-1].closed, transcript.name
