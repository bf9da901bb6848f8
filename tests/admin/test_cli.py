"""The admin CLI end to end: exact command forms, JSON, exit codes, one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mailwarden.admin.cli import run

FAST_ENV = {
    "MAILWARDEN_AUTH_ARGON2_MEMORY_KIB": "64",
    "MAILWARDEN_AUTH_ARGON2_TIME_COST": "1",
}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    data = str(tmp_path / "data")

    def call(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = run(["--data-dir", data, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_init_prints_the_demo_password_once(cli) -> None:
    code, out, _ = cli("init")
    assert code == 0 and "demo@example.test" in out and "password:" in out
    code, out, _ = cli("init")
    assert code == 0 and "password" not in out
    code, out, _ = cli("user", "list", "--json")
    assert [u["address"] for u in json.loads(out)] == ["demo@example.test"]


def test_domain_user_alias_lifecycle(cli) -> None:
    assert cli("domain", "add", "bücher.example")[0] == 0
    code, out, _ = cli("domain", "list", "--json")
    assert json.loads(out) == [
        {
            "name": "bücher.example",
            "ascii": "xn--bcher-kva.example",
            "alias_of": None,
            "mailboxes": 0,
            "aliases": 0,
            "created": json.loads(out)[0]["created"],
        }
    ]
    code, out, _ = cli(
        "user",
        "add",
        "jörg@bücher.example",
        "--password-stdin",
        "--quota",
        "1G",
        stdin="long enough pw\n",
    )
    assert code == 0, out
    code, out, _ = cli("user", "show", "JÖRG@bücher.example", "--json")
    info = json.loads(out)
    assert info["address"] == "jörg@bücher.example" and info["quota_bytes"] == 2**30
    assert "password" not in json.dumps(info)
    assert (
        cli(
            "user", "passwd", "jörg@bücher.example", "--password-stdin", stdin="another password\n"
        )[0]
        == 0
    )
    assert cli("user", "quota", "jörg@bücher.example", "--messages", "100")[0] == 0
    assert cli("user", "suspend", "jörg@bücher.example")[0] == 0
    assert json.loads(cli("user", "show", "jörg@bücher.example", "--json")[1])["status"] == (
        "suspended"
    )
    assert cli("user", "resume", "jörg@bücher.example")[0] == 0
    assert cli("alias", "add", "info@bücher.example", "jörg@bücher.example")[0] == 0
    assert cli("alias", "add", "@bücher.example", "jörg@bücher.example")[0] == 0
    code, out, _ = cli("alias", "list", "--json")
    assert [a["source"] for a in json.loads(out)] == [
        "@xn--bcher-kva.example",
        "info@xn--bcher-kva.example",
    ]
    code, _, err = cli("domain", "remove", "bücher.example")
    assert code == 5 and "--force" in err and err.count("\n") == 1
    assert cli("alias", "remove", "info@bücher.example")[0] == 0
    assert cli("user", "remove", "jörg@bücher.example")[0] == 0
    assert cli("domain", "remove", "bücher.example", "--force")[0] == 0
    assert json.loads(cli("domain", "list", "--json")[1]) == []


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (("user", "add", "nope", "--password-stdin"), "password123\n", 1, "not an address"),
        (("user", "add", "a@unknown.test", "--password-stdin"), "password123\n", 3, "no such"),
        (("user", "add", "a@example.test", "--password-stdin"), "short\n", 1, "at least 8"),
        (("user", "add", "a@example.test", "--password-stdin"), "", 1, "no password"),
        (("user", "add", "a@example.test"), "", 1, "--password-stdin"),
        (("user", "show", "ghost@example.test"), "", 3, "no such mailbox"),
        (("domain", "add", "example.test"), "", 4, "exists already"),
        (("domain", "add", "bad_domain"), "", 1, "domain"),
        (("domain", "show", "nowhere.test"), "", 3, "no such domain"),
        (("alias", "remove", "nothing@example.test"), "", 3, "no such alias"),
        (("user", "quota", "demo@example.test", "--bytes", "lots"), "", 1, "not a size"),
        (("user", "add", "demo@example.test", "--password-stdin"), "password123\n", 4, "exists"),
    ],
)
def test_bad_input_gets_one_line_and_an_exit_code(cli, args, stdin, code, message) -> None:
    assert cli("init")[0] == 0
    got, out, err = cli(*args, stdin=stdin)
    assert got == code, (out, err)
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_usage_errors_exit_2(cli) -> None:
    with pytest.raises(SystemExit) as info:
        cli("domain", "frobnicate")
    assert info.value.code == 2


def test_bad_config_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[imap]\nport = -1\nnope = 1\n")
    assert run(["--config", str(path), "domain", "list"]) == 78
    err = capsys.readouterr().err
    assert "imap.port: -1 is below the minimum 0" in err and "imap.nope: unknown setting" in err


def test_the_console_script_reads_passwords_from_stdin_only(tmp_path: Path) -> None:
    env = {**FAST_ENV, "PATH": "/usr/bin:/bin"}
    exe = Path(sys.executable).parent / "mailwarden"
    base = [str(exe), "--data-dir", str(tmp_path / "d")]
    subprocess.run([*base, "init"], check=True, env=env, capture_output=True)
    done = subprocess.run(
        [*base, "user", "add", "x@example.test", "--password-stdin"],
        input="stdin password\n",
        text=True,
        env=env,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    sample = subprocess.run([*base, "config", "sample"], env=env, capture_output=True, text=True)
    assert sample.returncode == 0 and "[imap]" in sample.stdout


def test_user_app_password_commands(cli) -> None:
    assert cli("init")[0] == 0
    code, out, _ = cli("user", "app-password", "add", "demo@example.test", "--label", "phone")
    assert code == 0 and "password:" in out
    code, out, _ = cli("user", "app-password", "list", "demo@example.test")
    assert code == 0 and "phone" in out
    code, _, err = cli("user", "app-password", "list", "ghost@example.test")
    assert code == 3 and err.count("\n") == 1
