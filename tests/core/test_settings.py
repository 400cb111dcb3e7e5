"""Settings from the environment: strict parsing, one-line errors, a clean deploy check."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from resolutionflow.env import (
    ConfigError,
    env_bool,
    env_database,
    env_float,
    env_grip_url,
    env_int,
)

ROOT = Path(__file__).resolve().parents[2]
REAL_SECRET = "k3y-" + "x7Yq" * 16


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    dropped = {"DEBUG", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE", "EMAIL_URL"}
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"DEBUG": "0"}, "SECRET_KEY is required"),
        ({"DEBUG": "1", "DATABASE_URL": "nonsense"}, "DATABASE_URL must be a postgres://"),
        ({"DEBUG": "maybe"}, "DEBUG must be one of"),
        ({"DEBUG": "1", "RF_AI_TIMEOUT": "soon"}, "RF_AI_TIMEOUT must be a number"),
        ({"DEBUG": "1", "REDIS_URL": "http://x"}, "REDIS_URL must be a redis:// URL"),
        ({"DEBUG": "1", "TIME_ZONE": "Mars/Base"}, "TIME_ZONE must be an IANA time zone"),
        ({"DEBUG": "1", "LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of"),
        ({"DEBUG": "1", "SITE_URL": "example.com"}, "SITE_URL must be an absolute"),
    ],
)
def test_a_bad_value_stops_start_up_with_one_line_naming_it(env, needle):
    result = manage("check", **env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr


def test_production_settings_pass_the_deploy_check():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY=REAL_SECRET,
        ALLOWED_HOSTS="rf.example.com",
        EMAIL_URL="smtp://mailer:secret@smtp.example.com:587/?tls=True",
        DATABASE_URL="sqlite:///" + str(ROOT / "var" / "deploy-check.sqlite3"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_seed_demo_refuses_to_run_with_debug_off():
    result = manage("seed_demo", DEBUG="0", SECRET_KEY=REAL_SECRET)
    assert result.returncode != 0
    assert "refuses to run with DEBUG off" in result.stderr


def test_parsers(monkeypatch, tmp_path):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "-3")
    monkeypatch.setenv("X_FLOAT", "nan")
    assert env_bool("X_BOOL", default=False) is True
    assert env_bool("X_UNSET", default=True) is True
    with pytest.raises(ConfigError, match="X_INT must be at least 0"):
        env_int("X_INT", default=1, minimum=0)
    with pytest.raises(ConfigError, match="X_INT must be at most -4"):
        env_int("X_INT", default=1, maximum=-4)
    assert env_int("X_INT", default=1, minimum=-3, maximum=-3) == -3
    with pytest.raises(ConfigError, match="X_FLOAT"):
        env_float("X_FLOAT", default=1.0, minimum=0.1)
    monkeypatch.setenv("X_DB", "postgres://u@h:5432/")
    with pytest.raises(ConfigError, match="must name a database"):
        env_database("X_DB", default_sqlite=tmp_path / "db.sqlite3")
    monkeypatch.setenv("X_DB", "postgres://u@h:5432/rf")
    config = env_database("X_DB", default_sqlite=tmp_path / "db.sqlite3")
    assert config["OPTIONS"]["pool"]["max_size"] >= 10
    assert config["CONN_MAX_AGE"] == 0


def test_grip_url_needs_pushpins_key(monkeypatch):
    # Without the key any client could claim to be Pushpin (Grip-Sig) and get GRIP answers.
    assert env_grip_url("X_GRIP") == ""
    monkeypatch.setenv("X_GRIP", "http://pushpin:5561/")
    with pytest.raises(ConfigError, match="X_GRIP must carry Pushpin's sig_key"):
        env_grip_url("X_GRIP")
    monkeypatch.setenv("X_GRIP", "pushpin:5561")
    with pytest.raises(ConfigError, match="X_GRIP must be Pushpin's control URL"):
        env_grip_url("X_GRIP")
    monkeypatch.setenv("X_GRIP", "http://pushpin:5561/?iss=pushpin&key=s3cret")
    assert env_grip_url("X_GRIP") == "http://pushpin:5561/?iss=pushpin&key=s3cret"
