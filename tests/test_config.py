"""Configuration loading: defaults, TOML, environment, and every problem at once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mailwarden.config import Config, ConfigError, load_config, sample_config


def test_defaults_match_the_embedded_ports() -> None:
    config = load_config(env={})
    assert config == Config()
    ports = (
        config.smtp.port,
        config.submission.port,
        config.submission.tls_port,
        config.imap.port,
        config.imap.tls_port,
        config.pop3.port,
        config.pop3.tls_port,
        config.web.port,
        config.status.port,
    )
    assert ports == (2525, 2587, 2465, 1143, 1993, 1110, 1995, 8080, 8081)
    assert config.listen == "127.0.0.1"
    assert config.auth.argon2_memory_kib >= 19 * 1024 and config.auth.argon2_time_cost >= 2


def test_file_and_environment_overlay(tmp_path: Path) -> None:
    path = tmp_path / "mw.toml"
    path.write_text('hostname = "mx.example.net"\n[imap]\nport = 143\n')
    env = {"MAILWARDEN_IMAP_TLS_PORT": "993", "MAILWARDEN_DATA_DIR": "/srv/mail", "HOME": "/x"}
    config = load_config(path, env=env)
    assert config.hostname == "mx.example.net"
    assert (config.imap.port, config.imap.tls_port) == (143, 993)
    assert config.data_dir == "/srv/mail"
    assert load_config(path, env={}, overrides={"data_dir": "d"}).sqlite_path == Path(
        "d/mailwarden.db"
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'colour = "blue"\n[imap]\nport = "x"\nmax_bad_commands = 0\n'
        '[log]\nformat = "xml"\n[nosuch]\na = 1\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"MAILWARDEN_POP3_TIMEOUT": "5", "MAILWARDEN_BOGUS": "1"})
    problems = info.value.problems
    assert "colour: unknown setting" in problems
    assert "nosuch: unknown setting" in problems
    assert "imap.port: expected int, got str" in problems
    assert "imap.max_bad_commands: 0 is below the minimum 1" in problems
    assert "log.format: 'xml' is not one of logfmt, json" in problems
    assert "pop3.timeout: 5 is below the minimum 600" in problems
    assert "MAILWARDEN_BOGUS: no such setting" in problems
    assert len(problems) == 7


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[imap\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(broken, env={})


def test_sample_is_valid_toml_with_every_default(tmp_path: Path) -> None:
    text = sample_config()
    assert "# argon2id memory cost" in text
    path = tmp_path / "sample.toml"
    path.write_text(text)
    assert tomllib.loads(text)["imap"]["port"] == 1143
    assert load_config(path, env={}) == Config()


def test_status_options_live_in_the_one_file(tmp_path: Path) -> None:
    path = tmp_path / "mw.toml"
    path.write_text(
        '[status]\nport = 9081\npublic_url = "https://status.example.net"\nmin_notice = "3d"\n'
    )
    config = load_config(path, env={})
    assert config.status.port == 9081
    assert config.status.options == {
        "public_url": "https://status.example.net",
        "min_notice": "3d",
    }
    path.write_text('[status]\nbogus = 1\nmin_notice = "soon"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = "\n".join(info.value.problems)
    assert "status.bogus: unknown setting" in text and "min_notice" in text


def test_postmaster_is_an_address(tmp_path: Path) -> None:
    path = tmp_path / "mw.toml"
    path.write_text('[smtp]\npostmaster = "hostmaster@example.net"\n')
    assert str(load_config(path, env={}).postmaster) == "hostmaster@example.net"
    assert load_config(env={}).postmaster is None
    path.write_text('[smtp]\npostmaster = "not an address"\n')
    with pytest.raises(ConfigError, match=r"smtp\.postmaster"):
        load_config(path, env={})


def test_the_login_policy_is_configurable(tmp_path: Path) -> None:
    from mailwarden.auth.policy import AuthPolicy, policy_from_config

    path = tmp_path / "mw.toml"
    path.write_text("[auth]\nhost_failures = 5\nban_base = 60\n")
    policy = policy_from_config(load_config(path, env={}))
    assert policy == AuthPolicy(host_failures=5, ban_base=60.0)
    assert policy_from_config(load_config(env={})) == AuthPolicy()
