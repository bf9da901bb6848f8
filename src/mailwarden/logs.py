"""Structured logging: logfmt or JSON lines with per-connection context.

Servers set :data:`conn_context` (connection id, peer, protocol, account) for
the task serving a connection; a filter copies it into every record logged
from that task.  Passwords and message bodies are never passed to the logger.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

__all__ = ["TRACE", "conn_context", "setup_logging"]

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

conn_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("conn_context")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.ctx = conn_context.get({})
        return True


class _LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "t": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            **getattr(record, "ctx", {}),
            "msg": record.getMessage(),
        }
        line = " ".join(f"{k}={_quote(str(v))}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            **getattr(record, "ctx", {}),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' "=\n\t'):
        return value
    return json.dumps(value, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "logfmt") -> None:
    """Send logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(TRACE if level == "TRACE" else getattr(logging, level, logging.INFO))
