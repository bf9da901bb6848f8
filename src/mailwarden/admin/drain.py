"""Drain: a node stops accepting new sessions while current ones finish.

The switch is a small JSON file in the data directory, so that the CLI (another
process), the admin API and a maintenance window can all flip it and every
worker of the node sees it.  Listeners consult :meth:`DrainSwitch.active` for
each new connection; the file is re-read at most once per second, so the cost
per connection is a clock read.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DrainState", "DrainSwitch"]

FILE_NAME = "drain.json"


@dataclass(frozen=True, slots=True)
class DrainState:
    """Whether the node drains, since when, why, and the retry hint for clients."""

    active: bool
    since: float = 0.0
    reason: str = ""
    retry_after: int = 300


class DrainSwitch:
    """Reads and writes the drain state of one data directory."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = data_dir / FILE_NAME
        self._clock = clock
        self._checked = -1e9
        self._state = DrainState(False)

    def state(self) -> DrainState:
        """The current state, re-read from disk at most once per second."""
        now = self._clock()
        if now - self._checked >= 1.0:
            self._checked = now
            self._state = self.read()
        return self._state

    def active(self) -> bool:
        """Whether new sessions are refused now."""
        return self.state().active

    def read(self) -> DrainState:
        """The state on disk (not draining if there is no readable file)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return DrainState(
                True, float(data["since"]), str(data["reason"]), int(data["retry_after"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return DrainState(False)

    def turn_on(self, reason: str = "maintenance", retry_after: int = 300) -> DrainState:
        """Start draining (atomically replaces the file)."""
        state = DrainState(True, time.time(), reason, retry_after)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"since": state.since, "reason": reason, "retry_after": retry_after}),
            encoding="utf-8",
        )
        os.replace(tmp, self.path)
        self._checked = -1e9
        return state

    def turn_off(self) -> None:
        """Accept new sessions again."""
        self.path.unlink(missing_ok=True)
        self._checked = -1e9
