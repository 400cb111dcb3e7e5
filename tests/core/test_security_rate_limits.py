"""Rate limits: sign-in lockouts by name and address, per-user limits answered with 429."""

import json
import uuid

import pytest
from django.core.cache import caches
from django.urls import reverse

from escalations.models import Handoff
from flowpilot.models import Message, Session
from resolutionflow import ratelimit
from resolutionflow.demo import DEMO_PASSWORD
from resolutionflow.env import ConfigError, env_rate
from resolutionflow.ratelimit import Rate, client_address, parse_rate
from tests.escalations.conftest import make_session

JSON = {"HTTP_ACCEPT": "application/json"}
HTMX = {"HTTP_HX_REQUEST": "true"}


class Clock:
    """The limiter's time, moved by the test (no sleeping, nothing timing-sensitive)."""

    def __init__(self, monkeypatch) -> None:
        self.now = 1_900_000_000.0
        monkeypatch.setattr(ratelimit.time, "time", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


@pytest.fixture
def login_policy(settings):
    settings.RF_LOGIN_FREE_FAILURES_PER_NAME = 3
    settings.RF_LOGIN_FREE_FAILURES_PER_ADDRESS = 6
    settings.RF_LOGIN_LOCKOUT_SECONDS = 30
    settings.RF_LOGIN_LOCKOUT_MAX_SECONDS = 100
    settings.RF_LOGIN_FAILURE_MEMORY_SECONDS = 3600


def sign_in(client, username, password, *, address="203.0.113.7", path="/accounts/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("12/m", Rate(12, 60)),
        ("30/h", Rate(30, 3600)),
        (" 100 / 15m ", Rate(100, 900)),
        ("5/s", Rate(5, 1)),
        ("2/d", Rate(2, 86400)),
        ("off", None),
        ("0", None),
    ],
)
def test_rates_are_read_as_count_per_period(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["12", "12/w", "-1/m", "0/m", "1/0m", "many/h", "12/m/h"])
def test_a_bad_rate_stops_start_up_naming_the_variable(monkeypatch, text):
    monkeypatch.setenv("RF_RATE_MESSAGES", text)
    with pytest.raises(ConfigError, match="RF_RATE_MESSAGES"):
        env_rate("RF_RATE_MESSAGES", default="12/m")


def test_ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4(rf):
    def address(remote):
        return client_address(rf.get("/", REMOTE_ADDR=remote))

    assert address("2001:db8:1:2::5") == address("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address("2001:db8:1:3::5") != address("2001:db8:1:2::5")
    assert address("::ffff:198.51.100.4") == "198.51.100.4"
    assert address("198.51.100.4") == "198.51.100.4"


# ------------------------------------------------------------------------------ sign-in


def test_wrong_passwords_past_the_free_ones_lock_the_name_with_a_clear_429(
    client, personas, login_policy, clock
):
    for _ in range(2):
        assert sign_in(client, "tess", "wrong").status_code == 200
    locked = sign_in(client, "tess", "wrong")  # the third: locked for 30 s from now
    assert locked.status_code == 429
    assert locked["Retry-After"] == "30"
    body = locked.content.decode()
    assert "Too many failed sign-ins" in body
    assert "Wait 30 seconds" in body
    assert 'value="tess"' in body  # the name as typed stays in the box
    assert "wrong" not in body  # the password never comes back

    # While locked, even the right password is refused, without being checked.
    refused = sign_in(client, "tess", DEMO_PASSWORD)
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    clock.advance(31)
    assert sign_in(client, "tess", DEMO_PASSWORD).status_code == 302
    assert client.session["_auth_user_id"] == str(personas["tess"].pk)


def test_the_lockout_doubles_with_each_further_failure_up_to_the_cap(
    client, personas, login_policy, clock
):
    for _ in range(3):
        sign_in(client, "sam", "wrong")
    waits = []
    for _ in range(4):
        clock.advance(200)  # past any lockout, within the failure memory
        response = sign_in(client, "sam", "wrong")
        assert response.status_code == 429
        waits.append(int(response["Retry-After"]))
    assert waits == [60, 100, 100, 100]  # 30 → 60 → capped at 100


def test_failures_are_forgotten_after_the_memory_window(client, personas, login_policy, clock):
    for _ in range(2):
        sign_in(client, "sam", "wrong")
    clock.advance(3601)
    for _ in range(2):
        assert sign_in(client, "sam", "wrong").status_code == 200


def test_a_right_password_clears_the_names_failures(client, personas, login_policy, clock):
    for _ in range(2):
        sign_in(client, "sky", "wrong")
    assert sign_in(client, "sky", DEMO_PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        assert sign_in(client, "sky", "wrong").status_code == 200


def test_the_name_is_locked_whatever_the_address_and_however_it_is_spelled(
    client, personas, login_policy, clock
):
    for number, spelling in enumerate(["tess", "TESS", " Tess "]):
        sign_in(client, spelling, "wrong", address=f"198.51.100.{number}")
    response = sign_in(client, "tess", DEMO_PASSWORD, address="192.0.2.200")
    assert response.status_code == 429


def test_one_address_guessing_at_many_names_is_locked_out(client, personas, login_policy, clock):
    for number in range(5):
        assert sign_in(client, f"nobody{number}", "wrong").status_code == 200
    assert sign_in(client, "nobody-else", "wrong").status_code == 429  # the sixth from there
    # Another address signs in; this one waits, even with a right password.
    assert sign_in(client, "ada", DEMO_PASSWORD, address="192.0.2.1").status_code == 302
    other = type(client)()
    assert sign_in(other, "gwen", DEMO_PASSWORD).status_code == 429


def test_unknown_names_are_locked_like_real_ones(client, db, login_policy, clock):
    """Lockouts must not tell which names exist."""
    responses = [sign_in(client, "no-such-person", "wrong") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]


def test_admin_sign_in_is_limited_the_same_way(client, personas, login_policy, clock):
    for _ in range(3):
        response = sign_in(client, "ada", "wrong", path="/admin/login/")
    body = response.content.decode()
    assert "Too many failed sign-ins" in body
    assert sign_in(client, "ada", DEMO_PASSWORD).status_code == 429  # the app's page too
    refused = sign_in(client, "ada", DEMO_PASSWORD, path="/admin/login/")
    assert "Too many failed sign-ins" in refused.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_sign_in_page_refuses_put(client, db):
    response = client.put("/accounts/login/", "username=tess&password=demo")
    assert response.status_code == 405


# ------------------------------------------------------------------------------ per user


@pytest.fixture
def tight_limits(settings):
    settings.RF_RATE_LIMITS = {
        "sessions": Rate(2, 3600),
        "messages": Rate(2, 60),
        "escalations": Rate(1, 3600),
    }


def test_messages_past_the_limit_get_json_429_with_retry_after_and_send_nothing(
    client_for, tess, tight_limits, clock
):
    session = make_session(tess)
    client = client_for(tess)
    url = reverse("flowpilot:post_message", args=[session.pk])
    for number in range(2):
        assert client.post(url, {"body": f"Message {number}"}, **JSON).status_code == 201
    before = Message.objects.filter(session=session).count()

    response = client.post(url, {"body": "One too many"}, **JSON)
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    payload = response.json()
    assert payload["error"] == "rate_limited"
    assert payload["retry_after"] == retry_after
    assert "Nothing was sent" in payload["message"]
    assert Message.objects.filter(session=session).count() == before  # no Claude call either

    clock.advance(retry_after)
    assert client.post(url, {"body": "Later"}, **JSON).status_code == 201


def test_an_htmx_message_past_the_limit_gets_a_toast_and_no_swap(
    client_for, tess, tight_limits, clock
):
    session = make_session(tess)
    client = client_for(tess)
    url = reverse("flowpilot:post_message", args=[session.pk])
    for number in range(2):
        client.post(url, {"body": f"Message {number}"}, **HTMX)
    response = client.post(url, {"body": "Keep me"}, **HTMX)
    assert response.status_code == 429  # htmx does not swap it: the composer keeps the text
    assert response["Retry-After"]
    toasts = json.loads(response["HX-Trigger"])["messages"]
    assert "Too many messages" in toasts[0]["message"]


def test_a_plain_form_post_past_the_limit_gives_back_what_was_typed(
    client_for, tess, tight_limits, clock
):
    session = make_session(tess)
    client = client_for(tess)
    url = reverse("flowpilot:post_message", args=[session.pk])
    for number in range(2):
        client.post(url, {"body": f"Message {number}"})
    typed = 'Printer <b>jams</b> & "smokes"\non floor 3'
    response = client.post(url, {"body": typed})
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many messages" in body
    assert f'action="{url}"' in body
    assert "Printer &lt;b&gt;jams&lt;/b&gt; &amp; &quot;smokes&quot;\non floor 3</textarea>" in body
    assert "csrfmiddlewaretoken" in body  # a fresh token: "Send again" works


def test_limits_count_per_person(client_for, tess, sam, tight_limits, clock):
    session = make_session(tess)
    url = reverse("flowpilot:post_message", args=[session.pk])
    tess_client = client_for(tess)
    for number in range(3):
        tess_client.post(url, {"body": f"Message {number}"}, **JSON)
    own = make_session(sam)
    own_url = reverse("flowpilot:post_message", args=[own.pk])
    assert client_for(sam).post(own_url, {"body": "Mine"}, **JSON).status_code == 201


def test_new_sessions_past_the_limit_get_429(client_for, tess, tight_limits, clock):
    client = client_for(tess)
    url = reverse("flowpilot:start_session")
    fields = {"problem": "VPN drops every ten minutes", "customer": "Acme", "device": "PC-1"}
    for _ in range(2):
        assert client.post(url, fields, **JSON).status_code == 201
    response = client.post(url, fields, **JSON)
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert Session.objects.filter(owner=tess).count() == 2
    page = client.post(url, fields)
    assert page.status_code == 429
    assert "VPN drops every ten minutes</textarea>" in page.content.decode()


def test_escalations_past_the_limit_get_429(client_for, tess, tight_limits, clock):
    first, second = make_session(tess), make_session(tess)
    client = client_for(tess)
    fields = {"reason": "Stuck on the certificate", "urgency": "high"}
    ok = client.post(reverse("escalate", args=[first.pk]), fields, **JSON)
    assert ok.status_code == 201
    refused = client.post(reverse("escalate", args=[second.pk]), fields, **JSON)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 60
    assert not Handoff.objects.filter(session=second).exists()
    htmx = client.post(reverse("escalate", args=[second.pk]), fields, **HTMX)
    assert htmx.status_code == 429
    assert "Too many escalations" in htmx["HX-Trigger"]


def test_anonymous_and_wrong_role_requests_are_not_counted(
    client, client_for, tess, sam, tight_limits, clock
):
    session = make_session(tess)
    url = reverse("flowpilot:post_message", args=[session.pk])
    for _ in range(3):
        client.post(url, {"body": "x"}, **JSON)  # anonymous: sent to sign in, not counted
    assert client_for(tess).post(url, {"body": "Real"}, **JSON).status_code == 201


# ----------------------------------------------------------------- the cache behind them


def test_redis_counts_every_process_together(redis_url, settings, tess):
    """Two cache clients (two web processes) share one count in Redis."""
    prefix = f"rf-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
        },
    }
    rate = Rate(3, 60)
    assert ratelimit.hit("test", tess.pk, rate, now=120.0) is None
    caches["ratelimit"].close()
    from django.core.cache.backends.redis import RedisCache

    other_process = RedisCache(redis_url, {"KEY_PREFIX": prefix})
    key = next(iter(other_process._cache.get_client().scan_iter(f"{prefix}:*")))
    assert other_process._cache.get_client().get(key) == b"1"
    assert ratelimit.hit("test", tess.pk, rate, now=130.0) is None
    assert ratelimit.hit("test", tess.pk, rate, now=140.0) is None
    assert ratelimit.hit("test", tess.pk, rate, now=150.0) == 30.0
    other_process._cache.get_client().delete(key)


def test_a_dead_cache_lets_sign_in_and_messages_through(
    client, client_for, settings, tess, tight_limits, caplog
):
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens on the discard port
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        },
    }
    assert sign_in(client, "tess", DEMO_PASSWORD).status_code == 302
    session = make_session(tess)
    url = reverse("flowpilot:post_message", args=[session.pk])
    statuses = [client.post(url, {"body": f"m{n}"}, **JSON).status_code for n in range(3)]
    assert statuses == [201, 201, 201]
    assert "the cache did not answer" in caplog.text
