"""Replay every POP3 transcript against the pure core, whole, byte by byte and in random splits."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from pop3_fake import FakeApp
from pop3_transcript import Transcript, all_transcripts, expected_pattern

from mailwarden.proto.pop3 import Closed, Pop3Session, Pop3Settings

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
        rng = random.Random(seed + len(data))
        i = 0
        while i < len(data):
            n = rng.randint(1, 17)
            yield data[i : i + n]
            i += n

    return split


CHUNKERS: dict[str, Chunker] = {
    "whole": whole,
    "bytewise": bytewise,
    **{f"random{seed}": random_splits(seed) for seed in range(3)},
}


def settings_for(transcript: Transcript) -> Pop3Settings:
    options = transcript.options
    return Pop3Settings(
        allow_cleartext="cleartext" in options,
        tls_active="tls" in options,
        stls_available="no-stls" not in options,
        max_bad_commands=int(options.get("max-bad-commands") or 20),
        max_line=int(options.get("max-line") or 512),
    )


def replay(transcript: Transcript, chunker: Chunker) -> None:
    session = Pop3Session(settings_for(transcript))
    app = FakeApp()
    for number, step in enumerate(transcript.steps):
        out = b""
        data = b"".join(line + b"\r\n" for line in step.send)
        for chunk in chunker(data):
            session.receive_data(chunk)
            out += app.drive(session)
        out += app.drive(session)
        app.finish_tls(session)
        pattern = expected_pattern(step.expect)
        assert pattern.fullmatch(out), f"step {number}: got {out!r}, want {pattern.pattern!r}"
        assert isinstance(session.next_event(), Closed) is step.closed, f"step {number}"


@pytest.mark.parametrize("chunking", CHUNKERS)
@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=[t.name for t in TRANSCRIPTS])
def test_transcript(transcript: Transcript, chunking: str) -> None:
    replay(transcript, CHUNKERS[chunking])


def test_every_transcript_ends_closed() -> None:
    assert len(TRANSCRIPTS) >= 15
    for transcript in TRANSCRIPTS:
        assert transcript.steps[-1].closed, transcript.name
