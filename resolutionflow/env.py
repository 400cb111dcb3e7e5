"""Strict parsing of environment variables for settings.py.

A bad value raises ``ConfigError`` with a one-line reason naming the variable;
manage.py, asgi.py and the Celery app print that line and exit instead of a traceback.
"""

import math
import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import dj_email_url

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


# Concurrent writers (ASGI threads, the inline worker) wait for the lock instead of failing.
SQLITE_OPTIONS = {"timeout": 20, "transaction_mode": "IMMEDIATE"}


# How long a request waits for a pooled database connection before it answers 503 (see
# resolutionflow/unavailable.py). Under load a checkout waits milliseconds; a wait of
# seconds means the database is down or refusing connections, and then a quick "try again
# in a few seconds" beats holding the person (and a server thread) for the 10+ s a browser
# or proxy might wait. 3 s also rides out a pool refilling after a restart of PostgreSQL.
DATABASE_POOL_TIMEOUT_DEFAULT = 3.0


def _pool_check_connection(connection) -> None:
    """psycopg_pool's check, imported only when PostgreSQL is configured."""
    from psycopg_pool import ConnectionPool

    ConnectionPool.check_connection(connection)


class ConfigError(Exception):
    """A setting from the environment is missing or malformed."""


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, *, default: str) -> str:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, *, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be one of 1/0, true/false, yes/no, on/off (got {value!r})")


def env_int(
    name: str, *, default: int, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number (got {value!r})") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum} (got {number})")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name} must be at most {maximum} (got {number})")
    return number


def env_float(name: str, *, default: float, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number (got {value!r})") from None
    if number != number or (minimum is not None and number < minimum):
        raise ConfigError(f"{name} must be a number of at least {minimum} (got {value!r})")
    return number


def env_list(name: str, *, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_database(name: str, *, default_sqlite: Path) -> dict:
    value = _raw(name)
    if not value:
        default_sqlite.parent.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": default_sqlite,
            "OPTIONS": dict(SQLITE_OPTIONS),
            # A file, not memory, so the test server's threads share it; one per test run so
            # that concurrent runs on one machine never meet.
            "TEST": {"NAME": default_sqlite.with_name(f"test-{os.getpid()}.sqlite3")},
        }
    scheme = urlsplit(value).scheme
    if scheme not in {"postgres", "postgresql", "pgsql", "sqlite"}:
        raise ConfigError(f"{name} must be a postgres:// or sqlite:// URL (got {value!r})")
    try:
        config = dj_database_url.parse(value)
    except Exception as error:  # dj-database-url raises several types
        raise ConfigError(f"{name} is not a valid database URL: {error}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config.setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
    if config["ENGINE"] == "django.db.backends.postgresql":
        if not config.get("NAME"):
            raise ConfigError(f"{name} must name a database (got {value!r})")
        # A pool instead of a connection per request (about 4 ms saved per request).
        config["CONN_MAX_AGE"] = 0
        options = config.setdefault("OPTIONS", {})
        timeout = env_float(
            "DATABASE_POOL_TIMEOUT", default=DATABASE_POOL_TIMEOUT_DEFAULT, minimum=0.1
        )
        options["pool"] = {
            "min_size": 2,
            "max_size": env_int("DATABASE_POOL_SIZE", default=20, minimum=2),
            "timeout": timeout,
            # A connection whose server went away (restart, pg_terminate_backend, failover)
            # is found dead here, one empty query before it is handed out, and replaced:
            # without it every dead pooled connection cost one request its 500.
            "check": _pool_check_connection,
        }
        # A server that swallows packets must not hold a pool worker for minutes; libpq
        # counts whole seconds and treats 1 as 2.
        options.setdefault("connect_timeout", max(2, math.ceil(timeout)))
    return config


def env_redis_url(name: str) -> str:
    value = _raw(name) or ""
    if value and urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"{name} must be a redis:// URL (got {value!r})")
    return value


def env_grip_url(name: str) -> str:
    """Pushpin's control URL with the key it signs requests with (or empty: no Pushpin).

    The key is required: only a request signed by Pushpin (``Grip-Sig``) may get GRIP
    instructions; without a key django_grip would take any client's say-so.
    """
    value = _raw(name) or ""
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(
            f"{name} must be Pushpin's control URL, http://host:5561/?... (got {value!r})"
        )
    if "key=" not in parts.query:
        raise ConfigError(
            f"{name} must carry Pushpin's sig_key: {parts.scheme}://{parts.netloc}/?iss=pushpin&key=..."
        )
    return value


def env_email(name: str, *, default: str) -> dict:
    """Parse an email URL (console://, smtp://user:pass@host:587/?tls=True) into MAILERS."""
    value = _raw(name) or default
    try:
        config = dj_email_url.parse(value)
    except Exception as error:
        raise ConfigError(f"{name} is not a valid email URL: {error}") from None
    if not config.get("EMAIL_BACKEND"):
        raise ConfigError(f"{name} has an unknown scheme (got {value!r})")
    options = {}
    backend = config["EMAIL_BACKEND"]
    if backend.endswith("smtp.EmailBackend"):
        # Django's SMTP backend with one deadline for the whole exchange, derived from the
        # timeout, as the email lease is (resolutionflow/smtp.py).
        backend = "resolutionflow.smtp.DeadlineEmailBackend"
        options = {
            "host": config["EMAIL_HOST"] or "localhost",
            "port": config["EMAIL_PORT"] or 25,
            "username": config["EMAIL_HOST_USER"] or "",
            "password": config["EMAIL_HOST_PASSWORD"] or "",
            "use_tls": config["EMAIL_USE_TLS"],
            "use_ssl": config["EMAIL_USE_SSL"],
            # Each SMTP round trip waits at most this; a whole send at most one per round
            # trip (resolutionflow.smtp.send_deadline); a row is leased a little longer.
            "timeout": config["EMAIL_TIMEOUT"] or 10,
        }
    elif config["EMAIL_BACKEND"].endswith("filebased.EmailBackend"):
        options = {"file_path": config["EMAIL_FILE_PATH"]}
    return {"default": {"BACKEND": backend, "OPTIONS": options}}


def env_choice(name: str, *, default: str, choices: set[str] | frozenset[str]) -> str:
    value = _raw(name)
    if value is None or value == "":
        return default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(sorted(choices))} (got {value!r})")
    return value


def env_time_zone(name: str, *, default: str) -> str:
    import zoneinfo

    value = _raw(name) or default
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{name} must be an IANA time zone such as Europe/Paris (got {value!r})"
        ) from None
    return value


def env_site_url(name: str, *, default: str) -> str:
    value = (_raw(name) or default).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"{name} must be an absolute http(s):// URL (got {value!r})")
    return value


def env_rate(name: str, *, default: str):
    """A rate limit such as ``12/m``, ``30/h`` or ``100/15m``; ``off`` for none."""
    from resolutionflow.ratelimit import parse_rate

    value = _raw(name)
    try:
        return parse_rate(default if value is None else value)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None
