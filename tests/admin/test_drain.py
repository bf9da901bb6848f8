"""Drain switch: flipped by the CLI, seen by the node within a second."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwarden.admin.cli import run
from mailwarden.admin.drain import DrainSwitch


def test_switch_is_cached_for_a_second(tmp_path: Path) -> None:
    now = [100.0]
    node_view = DrainSwitch(tmp_path, clock=lambda: now[0])
    operator = DrainSwitch(tmp_path)
    assert not node_view.active()
    operator.turn_on("kernel upgrade", retry_after=120)
    assert not node_view.active()  # read less than a second ago
    now[0] += 1.0
    assert node_view.active()
    state = node_view.state()
    assert (state.reason, state.retry_after) == ("kernel upgrade", 120)
    operator.turn_off()
    now[0] += 1.0
    assert not node_view.active()


def test_corrupt_file_means_not_draining(tmp_path: Path) -> None:
    (tmp_path / "drain.json").write_text("{not json")
    assert not DrainSwitch(tmp_path).active()


def test_cli_drain_on_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--data-dir", str(tmp_path)]
    assert run([*base, "drain", "on", "--reason", "upgrade", "--retry-after", "60"]) == 0
    assert "draining since" in capsys.readouterr().out
    assert DrainSwitch(tmp_path).read().retry_after == 60
    assert run([*base, "drain", "status"]) == 0
    assert "upgrade" in capsys.readouterr().out
    assert run([*base, "drain", "off"]) == 0
    assert "accepting new sessions" in capsys.readouterr().out
    assert run([*base, "drain", "on", "--retry-after", "0"]) == 1
