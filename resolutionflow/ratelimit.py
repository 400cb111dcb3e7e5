"""Rate limits: sign-in attempts, and what one person may start per minute or hour.

One small mechanism over Django's cache alias ``ratelimit``: Redis (``RedisCache``) when
REDIS_URL is set, so every web process counts together; local memory in embedded mode (one
process). Counters are fixed windows (``cache.add`` then ``cache.incr``, both atomic in Redis
and in local memory): cheap (one round trip per limited request) and exact enough for a
limit that exists to stop floods, not to bill.

- Sign-in (``SignInLimiter``): failures are counted per account name and per client address.
  Past a number of free failures each further failure locks that name (or address) out for
  a delay that doubles, up to a cap; while locked, no password is even checked. A correct
  password clears the name's failures.
- Per user (``limit_per_user``): new sessions, messages (each one a paid Claude call when a
  key is set) and escalations. Past the rate the view is not run: 429 with ``Retry-After``,
  as JSON for API clients, a toast for htmx (which keeps the form as typed), and for a plain
  form post a page that gives back what was typed, ready to send again.

A cache that does not answer (Redis down) lets requests through and logs a warning: a
broken limiter must never take sign-in down with it.

Limits are settings (``RF_RATE_*``, ``RF_LOGIN_*``), read at each request; docs/OPERATIONS.md
"Limits" lists them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)

CACHE_ALIAS = "ratelimit"
RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    """At most ``count`` hits per ``seconds``."""

    count: int
    seconds: int

    def __str__(self) -> str:
        unit = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}.get(self.seconds)
        return f"{self.count} per {unit or describe_seconds(self.seconds)}"


def parse_rate(text: str) -> Rate | None:
    """``"12/m"``, ``"30/h"``, ``"100/15m"`` → a Rate; ``"off"`` or ``"0"`` → None (no limit).

    Raises ValueError for anything else (settings turn it into a ConfigError).
    """
    text = text.strip().lower()
    if text in {"off", "0", "none", ""}:
        return None
    match = RATE_PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a rate like 12/m, 30/h or 100/15m (or off)")
    count, multiplier, unit = int(match[1]), int(match[2] or 1), match[3]
    if count < 1 or multiplier < 1:
        raise ValueError(f"{text!r}: the count and the period must be at least 1")
    return Rate(count=count, seconds=multiplier * UNIT_SECONDS[unit])


def describe_seconds(seconds: float) -> str:
    """A wait as people say it: "1 second", "45 seconds", "2 minutes", "1 hour"."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 60:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    if seconds < 3600:
        minutes = math.ceil(seconds / 60)
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    hours = math.ceil(seconds / 3600)
    return "1 hour" if hours == 1 else f"{hours} hours"


def _cache():
    return caches[CACHE_ALIAS]


def _digest(value: object) -> str:
    # Names can hold any character; cache keys (memcached, logs) should not.
    return hashlib.sha256(str(value).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _incr(key: str, timeout: int) -> int:
    cache = _cache()
    cache.add(key, 0, timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout)
        return 1


def hit(scope: str, identity: object, rate: Rate, *, now: float | None = None) -> float | None:
    """Count one hit of ``identity`` in ``scope``; the seconds to wait if it is over ``rate``,
    else None. A cache that fails lets the hit through (and logs it)."""
    now = time.time() if now is None else now
    window = int(now // rate.seconds)
    key = f"rl:{scope}:{_digest(identity)}:{window}"
    try:
        count = _incr(key, rate.seconds + 1)
    except Exception:  # Redis down or slow: never refuse (or hang) because of the limiter
        logger.warning("rate limit %s not checked: the cache did not answer", scope, exc_info=True)
        return None
    if count <= rate.count:
        return None
    return (window + 1) * rate.seconds - now


# --------------------------------------------------------------------------- answering 429


def too_many_requests(request: HttpRequest, *, retry_after: float, message: str) -> HttpResponse:
    """429 with ``Retry-After`` in the shape the client reads; what was typed is never lost."""
    from resolutionflow.http import wants_json

    seconds = max(1, math.ceil(retry_after))
    if wants_json(request):
        response = JsonResponse(
            {"error": "rate_limited", "message": message, "retry_after": seconds}, status=429
        )
    elif getattr(request, "htmx", False):
        # htmx does not swap a 429: the form keeps its text; the toast says why.
        messages.error(request, message)
        response = HttpResponse(status=429)
    else:
        fields = [
            (name, value)
            for name, values in request.POST.lists()
            if name != "csrfmiddlewaretoken"
            for value in values
        ]
        response = render(
            request,
            "429.html",
            {"message": message, "retry_after": seconds, "fields": fields, "action": request.path},
            status=429,
        )
    response["Retry-After"] = str(seconds)
    return response


# ------------------------------------------------------------------------------ per user

# What each limited action is called in messages.
SCOPE_WORDS = {
    "sessions": "new sessions",
    "messages": "messages",
    "escalations": "escalations",
    "presence": "page refreshes",
}


def limit_per_user(scope: str) -> Callable:
    """Limit a signed-in person's requests to the view to ``settings.RF_RATE_LIMITS[scope]``.

    Put it under the role check, so that only requests the person may make are counted.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            rate = settings.RF_RATE_LIMITS.get(scope)
            if rate is not None and request.user.is_authenticated:
                wait = hit(f"user-{scope}", request.user.pk, rate)
                if wait is not None:
                    message = (
                        f"Too many {SCOPE_WORDS.get(scope, scope)} in a short time (the limit is "
                        f"{rate}). Nothing was sent: try again in {describe_seconds(wait)}."
                    )
                    return too_many_requests(request, retry_after=wait, message=message)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# ------------------------------------------------------------------------------- sign-in


def client_address(request: HttpRequest) -> str:
    """The address sign-in failures are counted for: the client's IP (set by the server from
    the proxy's X-Forwarded-For when uvicorn runs with --proxy-headers), an IPv6 client by
    its /64, since one machine commonly holds a whole /64."""
    raw = request.META.get("REMOTE_ADDR") or "unknown"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True)
class SignInPolicy:
    free_failures_per_name: int
    free_failures_per_address: int
    first_lockout_seconds: int
    max_lockout_seconds: int
    failure_memory_seconds: int

    @classmethod
    def from_settings(cls) -> SignInPolicy:
        return cls(
            free_failures_per_name=settings.RF_LOGIN_FREE_FAILURES_PER_NAME,
            free_failures_per_address=settings.RF_LOGIN_FREE_FAILURES_PER_ADDRESS,
            first_lockout_seconds=settings.RF_LOGIN_LOCKOUT_SECONDS,
            max_lockout_seconds=settings.RF_LOGIN_LOCKOUT_MAX_SECONDS,
            failure_memory_seconds=settings.RF_LOGIN_FAILURE_MEMORY_SECONDS,
        )

    def lockout_after(self, failures: int, free: int) -> int:
        """Seconds locked after the ``failures``-th failure: none while free, then the first
        lockout, doubling with each further failure up to the cap."""
        if failures < free:
            return 0
        doublings = min(failures - free, 20)
        return min(self.first_lockout_seconds * 2**doublings, self.max_lockout_seconds)


class SignInLimiter:
    """Failed sign-ins of one request, by account name and by client address."""

    def __init__(self, request: HttpRequest, username: str) -> None:
        self.policy = SignInPolicy.from_settings()
        # Case and surrounding spaces do not make another name to guess at.
        self.keys = {
            "name": (_digest(username.strip().casefold()), self.policy.free_failures_per_name),
            "address": (_digest(client_address(request)), self.policy.free_failures_per_address),
        }

    def wait_seconds(self, *, now: float | None = None) -> float:
        """How long sign-in stays refused for this name or address (0: go ahead)."""
        now = time.time() if now is None else now
        try:
            until = _cache().get_many([f"rl:login-lock:{kind}:{key}" for kind, (key, _) in self])
        except Exception:
            logger.warning("sign-in limit not checked: the cache did not answer", exc_info=True)
            return 0
        return max([0, *(float(value) - now for value in until.values())])

    def record_failure(self, *, now: float | None = None) -> float:
        """Count a wrong password; returns the lockout it starts (0 for none)."""
        now = time.time() if now is None else now
        cache = _cache()
        longest = 0
        try:
            for kind, (key, free) in self:
                memory = self.policy.failure_memory_seconds
                failures = _incr(f"rl:login-fail:{kind}:{key}", memory)
                cache.touch(f"rl:login-fail:{kind}:{key}", memory)  # remembered from the last
                lockout = self.policy.lockout_after(failures, free)
                if lockout:
                    cache.set(f"rl:login-lock:{kind}:{key}", now + lockout, lockout)
                    longest = max(longest, lockout)
        except Exception:
            logger.warning("sign-in failure not counted: the cache did not answer", exc_info=True)
        return longest

    def record_success(self) -> None:
        """A correct password clears the name's failures (not the address's: one good
        account must not reset the count of guesses made at others from there)."""
        key, _ = self.keys["name"]
        try:
            _cache().delete_many([f"rl:login-fail:name:{key}", f"rl:login-lock:name:{key}"])
        except Exception:
            logger.warning("sign-in failures not cleared: the cache did not answer", exc_info=True)

    def __iter__(self):
        return iter(self.keys.items())


def sign_in_refusal(wait: float) -> str:
    return (
        "Too many failed sign-ins for this account name or from your network. "
        f"Wait {describe_seconds(wait)}, then try again."
    )
