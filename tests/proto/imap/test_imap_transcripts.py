"""Replay every IMAP transcript against the pure core, at several chunk sizes.

Chunking invariance (STYLE.md §12.2): each transcript is fed whole per step,
byte by byte, and in random splits, and also all at once (fully pipelined),
with the same result.
"""

from __future__ import annotations

import pytest
from imap_transcript import (
    Transcript,
    bytewise,
    random_splits,
    replay_core,
    replay_core_whole,
    transcripts,
    whole,
)

CORE = transcripts("core")
IDS = [t.name for t in CORE]


@pytest.mark.parametrize("t", CORE, ids=IDS)
def test_transcript_whole(t: Transcript) -> None:
    assert replay_core(t, whole) is None, replay_core(t, whole)


@pytest.mark.parametrize("t", CORE, ids=IDS)
def test_transcript_bytewise(t: Transcript) -> None:
    assert replay_core(t, bytewise) is None, replay_core(t, bytewise)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("t", CORE, ids=IDS)
def test_transcript_random_splits(t: Transcript, seed: int) -> None:
    result = replay_core(t, random_splits(seed))
    assert result is None, result


@pytest.mark.parametrize("t", CORE, ids=IDS)
def test_transcript_pipelined(t: Transcript) -> None:
    # everything the client says, sent before reading anything back
    assert replay_core_whole(t, whole) is None, replay_core_whole(t, whole)
    assert replay_core_whole(t, random_splits(7)) is None
