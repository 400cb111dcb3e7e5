"""Presence: which seniors have a handoff's screen open, with no database write per heartbeat.

A senior's handoff screen beats every ``BEAT_SECONDS`` (htmx, ``templates/escalations/
_presence.html``); each beat keeps "this tab of this person views this handoff" alive for
``RF_PRESENCE_TTL_SECONDS`` (20 s) in Redis (``REDIS_URL``) or, in embedded mode, in this
process's memory. Nothing of it touches the database.

- Leaving: the page sends a beacon on ``pagehide`` (``static/js/app.js``) and the tab is
  gone at once. A tab that crashes or loses the network stops beating; the drain (every
  5 s, ``expire_presence``) removes it once its time is up: gone within TTL + 5 s.
- Only changes are published: a tab that starts viewing, leaves or expires sends one
  ``handoff-presence`` event (data: the handoff's id, no names) on the handoff's channel
  and on the account's queue channel, through the outbox; a beat that changes nothing
  sends nothing. The pages refetch who is viewing (``views.presence``): the names come from
  this store, per reader, never over a stream.
- Per account: a reader sees the viewers of their own account's handoffs only, never
  themselves; a technician never beats (the views are for engineers and admins).

One store per account: the members ``"<handoff>|<user>|<tab>|<name>"`` with the time each
expires as their score (a Redis sorted set), and the set of accounts with anyone viewing
for the drain. Each operation is one atomic step (a Lua script; a lock in memory), so two
drains or a beat racing a drain never report a change twice or lose a live tab.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from escalations.channels import handoff_channel, queue_channel
from escalations.streams import send_events_on_commit
from resolutionflow.broker import breaker
from resolutionflow.eventstream_redis import redis_config
from resolutionflow.models import User

logger = logging.getLogger(__name__)

EVENT = "handoff-presence"
# How often an open handoff screen beats (the template's hx-trigger says the same).
BEAT_SECONDS = 10
# A tab id: random per page view, so that closing one of two tabs does not end the other.
TAB = re.compile(r"^[0-9a-f]{8,32}$")


def clock() -> float:
    """Now, in seconds (tests replace it to move time on)."""
    return time.time()


def ttl_seconds() -> float:
    return float(settings.RF_PRESENCE_TTL_SECONDS)


@dataclass(frozen=True)
class Viewer:
    user_id: int
    name: str


def _member(handoff_id, user: User, tab: str) -> str:
    # The name travels in the member so that reading viewers needs no query.
    name = (user.first_name or user.name).replace("\n", " ")[:60]
    return f"{handoff_id}|{user.pk}|{tab}|{name}"


def _parse(member: str | bytes) -> tuple[str, int, str] | None:
    if isinstance(member, bytes):
        member = member.decode()
    parts = member.split("|", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[3]


# --- the stores ------------------------------------------------------------------------------


class MemoryStore:
    """This process's memory (embedded mode: one web process, no Redis)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[int, dict[str, float]] = {}

    def beat(self, account_id: int, member: str, expires: float, now: float) -> bool:
        with self._lock:
            members = self._accounts.setdefault(account_id, {})
            old = members.get(member)
            members[member] = expires
            return old is None or old <= now

    def leave(self, account_id: int, member: str) -> bool:
        with self._lock:
            members = self._accounts.get(account_id, {})
            return members.pop(member, None) is not None

    def live(self, account_id: int, now: float) -> list[str]:
        with self._lock:
            members = self._accounts.get(account_id, {})
            return [member for member, expires in members.items() if expires > now]

    def expire(self, now: float) -> dict[int, list[str]]:
        gone: dict[int, list[str]] = {}
        with self._lock:
            for account_id, members in list(self._accounts.items()):
                expired = [member for member, expires in members.items() if expires <= now]
                for member in expired:
                    del members[member]
                if expired:
                    gone[account_id] = expired
                if not members:
                    del self._accounts[account_id]
        return gone

    def clear(self) -> None:
        with self._lock:
            self._accounts.clear()


# KEYS: the account's members, the set of accounts; ARGV: member, expires, now, account.
_BEAT = """
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[4])
if (not old) or tonumber(old) <= tonumber(ARGV[3]) then return 1 end
return 0
"""
# KEYS: the account's members, the set of accounts; ARGV: now, account. Returns the expired.
_EXPIRE = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return gone
"""


class RedisStore:
    """Redis, shared by every web process and the worker (``REDIS_URL``)."""

    def __init__(self, config: dict) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # A slow Redis must not hold a page: one short try, then the page shows no one.
        options = config | {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        self.client = redis.Redis(retry=Retry(NoBackoff(), 0), **options)
        self._beat = self.client.register_script(_BEAT)
        self._expire = self.client.register_script(_EXPIRE)
        self.prefix = f"rf:presence:{settings.DATABASES['default']['NAME']}:"

    def _key(self, account_id: int) -> str:
        return f"{self.prefix}account:{account_id}"

    @property
    def _accounts(self) -> str:
        return f"{self.prefix}accounts"

    def beat(self, account_id: int, member: str, expires: float, now: float) -> bool:
        keys = [self._key(account_id), self._accounts]
        return bool(self._beat(keys=keys, args=[member, expires, now, account_id]))

    def leave(self, account_id: int, member: str) -> bool:
        return bool(self.client.zrem(self._key(account_id), member))

    def live(self, account_id: int, now: float) -> list[str]:
        members = self.client.zrangebyscore(self._key(account_id), f"({now}", "+inf")
        return [member.decode() for member in members]

    def expire(self, now: float) -> dict[int, list[str]]:
        gone: dict[int, list[str]] = {}
        for raw in self.client.smembers(self._accounts):
            account_id = int(raw)
            keys = [self._key(account_id), self._accounts]
            expired = self._expire(keys=keys, args=[now, account_id])
            if expired:
                gone[account_id] = [member.decode() for member in expired]
        return gone

    def clear(self) -> None:
        keys = list(self.client.scan_iter(f"{self.prefix}*"))
        if keys:
            self.client.delete(*keys)


_store_lock = threading.Lock()
_store: tuple[str, MemoryStore | RedisStore] | None = None


def store() -> MemoryStore | RedisStore:
    """The store of this configuration: Redis when the events use it, else memory."""
    global _store
    config = redis_config()
    key = repr(sorted(config.items())) if config else "memory"
    with _store_lock:
        if _store is None or _store[0] != key:
            _store = (key, RedisStore(config) if config else MemoryStore())
        return _store[1]


def _guarded(operation, fallback):
    """Run a store operation; Redis out of reach → ``fallback`` (presence is a courtesy:
    it never fails a page). The broker's breaker spares the others the timeout."""
    store_now = store()
    if isinstance(store_now, RedisStore) and breaker.is_open():
        return fallback
    try:
        return operation(store_now)
    except Exception as error:
        import redis

        if isinstance(error, redis.ConnectionError | redis.TimeoutError):
            breaker.trip()
            logger.warning("Presence skipped: Redis did not answer (%s)", error)
            return fallback
        raise


# --- what the views and the drain call -------------------------------------------------------


def _announce(changes: Iterable[tuple[int, str]]) -> None:
    """One ``handoff-presence`` event per changed handoff, on its channel and its queue's."""
    events = []
    for account_id, handoff_id in sorted(set(changes)):
        data = {"handoff": handoff_id}
        events.append((handoff_channel(handoff_id), EVENT, data))
        events.append((queue_channel(account_id), EVENT, data))
    if events:
        send_events_on_commit(events)


def record_viewing(*, handoff_id: uuid.UUID, user: User, tab: str) -> bool:
    """This tab of ``user`` views the handoff for another TTL; True if that is news (an
    event went out). The caller has checked that the handoff is in ``user``'s account."""
    now = clock()
    member = _member(handoff_id, user, tab)
    changed = _guarded(
        lambda s: s.beat(user.account_id, member, now + ttl_seconds(), now), fallback=False
    )
    if changed:
        _announce([(user.account_id, str(handoff_id))])
    return changed


def record_leaving(*, handoff_id: uuid.UUID, user: User, tab: str) -> bool:
    """This tab closed (the page's beacon); True if it was viewing (an event went out)."""
    member = _member(handoff_id, user, tab)
    changed = _guarded(lambda s: s.leave(user.account_id, member), fallback=False)
    if changed:
        _announce([(user.account_id, str(handoff_id))])
    return changed


def expire_presence(*, now: float | None = None) -> int:
    """Remove the tabs that stopped beating; announce each handoff that changed (the drain)."""
    now = clock() if now is None else now
    gone = _guarded(lambda s: s.expire(now), fallback={})
    changes = []
    for account_id, members in gone.items():
        for member in members:
            parsed = _parse(member)
            if parsed is not None:
                changes.append((account_id, parsed[0]))
    _announce(changes)
    return len(changes)


def viewers(
    *, account_id: int | None, handoff_ids: Iterable, exclude: User | None = None
) -> dict[str, list[Viewer]]:
    """Who views each of these handoffs now (each person once, in name order), by id."""
    wanted = {str(handoff_id) for handoff_id in handoff_ids}
    if account_id is None or not wanted:
        return {}
    now = clock()
    members = _guarded(lambda s: s.live(account_id, now), fallback=[])
    found: dict[str, dict[int, str]] = defaultdict(dict)
    for member in members:
        parsed = _parse(member)
        if parsed is None:
            continue
        handoff_id, user_id, name = parsed
        if handoff_id in wanted and (exclude is None or user_id != exclude.pk):
            found[handoff_id][user_id] = name
    return {
        handoff_id: sorted(
            (Viewer(user_id, name) for user_id, name in people.items()), key=lambda v: v.name
        )
        for handoff_id, people in found.items()
    }


def attach_viewers(handoffs: list, user: User) -> list:
    """Set ``handoff.viewers`` (others viewing it now) on each, in one store read."""
    found = viewers(account_id=user.account_id, handoff_ids=[h.pk for h in handoffs], exclude=user)
    for handoff in handoffs:
        handoff.viewers = found.get(str(handoff.pk), [])
    return handoffs


def new_tab() -> str:
    return uuid.uuid4().hex[:16]
