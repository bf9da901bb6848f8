"""`mailwarden serve` as an operator runs it: first start, demo credentials, clean stop."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVICES = (
    "SMTP_PORT",
    "SUBMISSION_PORT",
    "SUBMISSION_TLS_PORT",
    "IMAP_PORT",
    "IMAP_TLS_PORT",
    "POP3_PORT",
    "POP3_TLS_PORT",
    "WEB_PORT",
    "STATUS_PORT",
)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_serve_initialises_prints_credentials_and_stops_cleanly(tmp_path: Path) -> None:
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    env = {
        **os.environ,
        "MAILWARDEN_AUTH_ARGON2_MEMORY_KIB": "1024",
        "MAILWARDEN_AUTH_ARGON2_TIME_COST": "1",
        **{f"MAILWARDEN_{key}": str(port) for key, port in ports.items()},
    }
    exe = [sys.executable, "-m", "mailwarden"]
    proc = subprocess.Popen(
        [*exe, "--data-dir", str(tmp_path / "var"), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        output = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"serve exited early: {''.join(output)}"
            output.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(output)
        assert "demo@example.test" in text
        assert re.search(r"password: \S{12,}", text)
        assert (tmp_path / "var/tls/cert.pem").exists()
        assert (tmp_path / "var/mailwarden.db").exists()
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['WEB_PORT']}/healthz") as r:
            assert r.read() == b"ok\n"
        for key in ("IMAP_PORT", "POP3_PORT", "SMTP_PORT"):
            if f" {ports[key]}" in text:  # the service exists in this build
                socket.create_connection(("127.0.0.1", ports[key]), timeout=5).close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # A second start does not print a new password.
    again = subprocess.Popen(
        [*exe, "--data-dir", str(tmp_path / "var"), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert again.stdout is not None
        for line in again.stdout:
            assert "password:" not in line
            if line.startswith("Press Ctrl-C"):
                break
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=30) == 0
    finally:
        if again.poll() is None:
            again.kill()
            again.wait()
        if again.stdout is not None:
            again.stdout.close()
