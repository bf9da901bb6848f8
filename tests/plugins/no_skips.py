"""A pytest plugin (loaded with ``-p no_skips``, see pyproject.toml): no skips in CI.

Under ``make test`` (which installs every client the tests drive) a skipped
test is a failure: the skip markers exist for developers running pytest on a
machine without, say, swaks or chromium, never to hide a missing install step
or a broken test in CI.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

# Not MAILWARDEN_*: that prefix belongs to the configuration, which refuses unknown keys.
STRICT = os.environ.get("PYTEST_NO_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under make test, where nothing may be skipped: {reason}"
