"""Replay the SMTP transcripts over real sockets against the asyncio server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto" / "smtp"))

from smtp_harness import Client, client_tls_context, smtp_node
from smtp_transcript import MAX_SIZE, Transcript, all_transcripts, expected_pattern

from mailwarden.config import SmtpConfig

SOCKET_TRANSCRIPTS = [t for t in all_transcripts() if "core-only" not in t.options]


def smtp_config(transcript: Transcript) -> SmtpConfig:
    o = transcript.options
    return SmtpConfig(
        max_message_size=int(o.get("max-size") or MAX_SIZE),
        max_recipients=int(o.get("max-recipients") or 100),
        max_errors=int(o.get("max-errors") or 10),
    )


@pytest.mark.parametrize("transcript", SOCKET_TRANSCRIPTS, ids=[t.name for t in SOCKET_TRANSCRIPTS])
async def test_transcript_over_socket(tmp_path: Path, transcript: Transcript) -> None:
    tls = "tls" in transcript.options
    async with smtp_node(tmp_path, smtp=smtp_config(transcript)) as node:
        if "submission" in transcript.options:
            port = node.submissions_port if tls else node.submission_port
        else:
            port = node.port
        client = await Client.connect(port, tls=tls)
        try:
            for number, step in enumerate(transcript.steps):
                await client.send(b"".join(step.send))
                got = await client.lines(len(step.expect))
                pattern = expected_pattern(step.expect)
                assert pattern.fullmatch(got), f"step {number}: got {got!r}"
                if b"220 2.0.0 Ready to start TLS" in step.expect:
                    await client.writer.start_tls(client_tls_context())
                if step.closed:
                    assert await client.eof(), f"step {number}: still open"
        finally:
            await client.close()


def test_most_transcripts_run_over_sockets() -> None:
    assert len(SOCKET_TRANSCRIPTS) >= len(all_transcripts()) - 2
