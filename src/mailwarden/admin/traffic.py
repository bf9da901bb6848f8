"""The node's hour-of-week traffic profile, for choosing maintenance windows.

The node counts events per UTC hour in memory (``logins``, ``smtp_sessions``,
``webmail_requests``, and sessions per service) and merges them into a small
JSON file in the data directory every minute and at shutdown, keeping five
weeks.  :meth:`TrafficRecorder.profile` averages the last weeks into the
document the status service reads from ``GET /api/admin/traffic-profile``
(its format is specified in :mod:`mailwarden.web.status.traffic`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["SERIES", "TrafficRecorder"]

SERIES = ("logins", "smtp_sessions", "webmail_requests")
HOURS_PER_WEEK = 168
KEEP_HOURS = 5 * HOURS_PER_WEEK
# 1970-01-01 was a Thursday: hour-of-week 0 is Monday 00:00 UTC.
_EPOCH_HOUR_OF_WEEK = 3 * 24
FILE_NAME = "traffic.json"


def hour_of_week(epoch_hour: int) -> int:
    """0 for Monday 00:00-01:00 UTC ... 167 for Sunday 23:00-24:00."""
    return (epoch_hour + _EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK


class TrafficRecorder:
    """Counts events per hour and keeps a few weeks of them on disk."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = data_dir / FILE_NAME
        self._clock = clock
        self._pending: Counter[tuple[int, str]] = Counter()
        self._lock = threading.Lock()

    def count(self, series: str, n: int = 1) -> None:
        """Record ``n`` events of ``series`` now (cheap; safe from any thread)."""
        key = (int(self._clock() // 3600), series)
        with self._lock:
            self._pending[key] += n

    def _load(self) -> dict[int, dict[str, int]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {
                int(hour): {str(k): int(v) for k, v in counts.items()}
                for hour, counts in raw.get("hours", {}).items()
            }
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def flush(self) -> None:
        """Merge pending counts into the file (atomic replace), dropping old hours."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
        hours = self._load()
        for (hour, series), n in pending.items():
            bucket = hours.setdefault(hour, {})
            bucket[series] = bucket.get(series, 0) + n
        oldest = int(self._clock() // 3600) - KEEP_HOURS
        kept = {str(h): c for h, c in sorted(hours.items()) if h > oldest}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": 1, "hours": kept}), encoding="utf-8")
        os.replace(tmp, self.path)

    def profile(self, weeks: int = 4, node: str = "") -> dict[str, Any]:
        """The hour-of-week profile averaged over the last ``weeks`` weeks (this hour included)."""
        hours = self._load()
        with self._lock:
            for (hour, name), n in self._pending.items():
                bucket = hours.setdefault(hour, {})
                bucket[name] = bucket.get(name, 0) + n
        now_hour = int(self._clock() // 3600)
        first = now_hour - weeks * HOURS_PER_WEEK
        names = sorted(set(SERIES) | {s for c in hours.values() for s in c})
        series = {name: [0.0] * HOURS_PER_WEEK for name in names}
        for hour, counts in hours.items():
            if first < hour <= now_hour:
                slot = hour_of_week(hour)
                for name, n in counts.items():
                    series[name][slot] += n / weeks
        return {
            "version": 1,
            "bucket": "hour-of-week",
            "timezone": "UTC",
            "weeks": weeks,
            "node": node,
            "series": {name: [round(v, 3) for v in values] for name, values in series.items()},
        }
