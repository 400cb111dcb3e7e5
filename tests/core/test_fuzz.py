"""Fuzz every form and JSON endpoint: wrong types, huge bodies, invalid Unicode, deep nesting.

Whatever arrives, the answer is never a 5xx (the test client re-raises a view's exception,
so a crash fails the test with its traceback). Each endpoint is posted to by someone who may
use it, so the input reaches the parser and the form, as a form post, as htmx and as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.models import BaselineMeasurement
from escalations import actions as escalation_actions
from escalations.models import Handoff, Notification
from flowpilot.models import Message, Session, Task
from tests.escalations.conftest import escalate, make_session

pytestmark = pytest.mark.django_db

JSON = {"Accept": "application/json"}
HTMX = {"HX-Request": "true"}


@dataclass(frozen=True)
class Endpoint:
    name: str
    who: str  # the persona who may use it
    url: Callable[[dict], str]
    fields: tuple[str, ...]
    method: str = "POST"


ENDPOINTS = [
    Endpoint("start_session", "tess", lambda w: reverse("flowpilot:start_session"),
             ("problem", "customer", "device")),
    Endpoint("post_message", "tess", lambda w: reverse("flowpilot:post_message",
             args=[w["session"].pk]), ("body",)),
    Endpoint("resolve_session", "tess", lambda w: reverse("flowpilot:resolve",
             args=[w["spare"].pk]), ("note",)),
    Endpoint("add_task", "tess", lambda w: reverse("flowpilot:tasks", args=[w["session"].pk]),
             ("title", "detail", "command", "shell")),
    Endpoint("update_task", "tess", lambda w: reverse("flowpilot:task",
             args=[w["session"].pk, w["task"].pk]), ("status", "outcome")),
    Endpoint("move_task", "tess", lambda w: reverse("flowpilot:move_task",
             args=[w["session"].pk, w["task"].pk]), ("direction",)),
    Endpoint("escalate", "tess", lambda w: reverse("escalate", args=[w["escalatable"].pk]),
             ("reason", "urgency")),
    Endpoint("claim", "sky", lambda w: reverse("escalations:claim", args=[w["open"].pk]), ()),
    Endpoint("release", "sam", lambda w: reverse("escalations:release",
             args=[w["claimed"].pk]), ()),
    Endpoint("resolve_handoff", "sam", lambda w: reverse("escalations:resolve",
             args=[w["claimed"].pk]), ("note",)),
    Endpoint("take_over", "sky", lambda w: reverse("escalations:take_over",
             args=[w["open"].pk]), ("mode",)),
    Endpoint("open_step", "sam", lambda w: reverse("escalations:open_step",
             args=[w["claimed"].pk]), ("title",)),
    Endpoint("refresh_assessment", "sam", lambda w: reverse("escalations:refresh_assessment",
             args=[w["claimed"].pk]), ()),
    Endpoint("notification_read", "sam", lambda w: reverse("escalations:notification_read",
             args=[w["notification"].pk]), ("open",)),
    Endpoint("notifications_read_all", "sam",
             lambda w: reverse("escalations:notifications_read_all"), ()),
    Endpoint("baseline_create", "ada", lambda w: reverse("analytics:baseline_create"),
             ("minutes", "measured_on", "timed_by", "note")),
    Endpoint("baseline_edit", "ada", lambda w: reverse("analytics:baseline_edit",
             args=[w["baseline"].pk]), ("minutes", "measured_on", "timed_by", "note")),
    Endpoint("baseline_delete", "ada", lambda w: reverse("analytics:baseline_delete",
             args=[w["baseline"].pk]), ()),
    Endpoint("login", "anonymous", lambda w: reverse("login"), ("username", "password")),
    # Query strings read by GET endpoints.
    Endpoint("sessions_page", "tess", lambda w: reverse("flowpilot:sessions"), ("page",), "GET"),
    Endpoint("live_update", "tess", lambda w: reverse("flowpilot:session",
             args=[w["session"].pk]), ("live", "after", "lane"), "GET"),
    Endpoint("queue", "sam", lambda w: reverse("escalations:queue"),
             ("urgency", "customer", "escalated_by", "q", "after", "through", "size"), "GET"),
    Endpoint("my_handoffs", "sam", lambda w: reverse("escalations:queue_mine"),
             ("urgency", "customer", "q"), "GET"),
    Endpoint("analytics_json", "sam", lambda w: reverse("analytics:flowpilot_escalations"),
             ("from", "to"), "GET"),
    Endpoint("dashboard", "ada", lambda w: reverse("analytics:dashboard"), ("from", "to"), "GET"),
    Endpoint("export_csv", "ada", lambda w: reverse("analytics:export_csv"), ("from", "to"),
             "GET"),
]  # fmt: skip
BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}


@pytest.fixture(autouse=True)
def offline_engine(settings):
    settings.ANTHROPIC_API_KEY = ""


@pytest.fixture
def world(personas) -> dict:
    """One of everything the endpoints act on, in Acme."""
    tess, sam = personas["tess"], personas["sam"]
    session = make_session(tess)
    open_handoff = escalate(make_session(tess))
    claimed = escalate(make_session(tess))
    escalation_actions.claim_handoff(handoff_id=claimed.pk, user=sam)
    return {
        "session": session,
        "task": session.tasks.order_by("position").last(),
        "spare": make_session(tess),
        "escalatable": make_session(tess),
        "open": open_handoff,
        "claimed": claimed,
        "notification": Notification.objects.filter(recipient=sam).first(),
        "baseline": BaselineMeasurement.objects.create(
            account_id=tess.account_id,
            minutes=12,
            measured_on="2026-01-05",
            timed_by=personas["ada"],
        ),
    }


def client(personas, who: str) -> Client:
    signed_in = Client()
    if who != "anonymous":
        signed_in.force_login(personas[who])
    return signed_in


def form_body(fields: dict[str, bytes]) -> bytes:
    return "&".join(
        f"{quote_from_bytes(name.encode())}={quote_from_bytes(value)}"
        for name, value in fields.items()
    ).encode()


def send_json(c: Client, endpoint: Endpoint, url: str, raw: str | bytes):
    if endpoint.method == "GET":
        return c.get(url, headers=JSON)
    return c.post(url, raw, content_type="application/json", headers=JSON)


def send_form(c: Client, endpoint: Endpoint, url: str, body: bytes, *, htmx: bool = False):
    headers = HTMX if htmx else {}
    if endpoint.method == "GET":
        return c.get(f"{url}?{body.decode()}", headers=headers)
    return c.post(url, body, content_type="application/x-www-form-urlencoded", headers=headers)


def assert_no_server_error(response, what: str) -> None:
    assert response.status_code < 500, (what, response.status_code, response.content[:300])


# --------------------------------------------------------------------- the extreme cases

DEEP = 100_000


def extreme_json_bodies(fields: tuple[str, ...]) -> dict[str, str | bytes]:
    field = fields[0] if fields else "x"
    return {
        "deep_body": "[" * DEEP + "]" * DEEP,
        "deep_field": f'{{"{field}": ' + "[" * DEEP + "]" * DEEP + "}",
        "deep_object": '{"a":' * DEEP + "1" + "}" * DEEP,
        "lone_surrogate": json.dumps({name: "a\ud800b" for name in fields or ("x",)}),
        "surrogate_key": '{"\\udc00": "x"}',
        "huge_body": json.dumps({field: "x" * 3_000_000}),
        "huge_field": json.dumps({name: "y" * 100_000 for name in fields or ("x",)}),
        "wrong_types": json.dumps({name: [1, {"a": None}] for name in fields or ("x",)}),
        "numbers": json.dumps({name: 1e308 for name in fields or ("x",)}),
        "not_utf8": b'{"' + field.encode() + b'": "caf\xe9"}',
        "not_json": "{'single': quotes}",
        "null_bytes": json.dumps({name: "a\x00b" for name in fields or ("x",)}),
    }


def extreme_form_bodies(fields: tuple[str, ...]) -> dict[str, bytes]:
    names = fields or ("x",)
    return {
        "not_utf8": form_body({name: b"caf\xe9\xff" for name in names}),
        "huge_body": form_body({names[0]: b"x" * 3_000_000}),
        "huge_field": form_body({name: b"y" * 100_000 for name in names}),
        "null_bytes": form_body({name: b"a\x00b" for name in names}),
        "bidi": form_body({name: "rm \u202e-rf\u2066 /".encode() for name in names}),
        "many_fields": "&".join(f"f{i}=1" for i in range(2000)).encode(),
        "bad_name": b"%FF%FE=1",
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_extreme_bodies_never_give_a_5xx(personas, world, endpoint):
    url = endpoint.url(world)
    c = client(personas, endpoint.who)
    for case, raw in extreme_json_bodies(endpoint.fields).items():
        assert_no_server_error(send_json(c, endpoint, url, raw), f"json {case}")
    for case, body in extreme_form_bodies(endpoint.fields).items():
        if endpoint.method == "GET" and case in {"huge_body", "many_fields"}:
            continue  # a URL, not a body: the server's line limit applies first
        assert_no_server_error(send_form(c, endpoint, url, body), f"form {case}")
        assert_no_server_error(send_form(c, endpoint, url, body, htmx=True), f"htmx {case}")


@pytest.mark.parametrize(
    "name",
    [
        "start_session",
        "post_message",
        "add_task",
        "update_task",
        "resolve_session",
        "escalate",
        "resolve_handoff",
        "open_step",
        "take_over",
        "notification_read",
        "baseline_create",
        "baseline_edit",
    ],
)
def test_form_posts_that_are_not_utf8_are_400_and_store_nothing(personas, world, name):
    endpoint = BY_NAME[name]
    c = client(personas, endpoint.who)
    body = form_body({field: b"caf\xe9" for field in endpoint.fields})
    response = send_form(c, endpoint, endpoint.url(world), body)
    assert response.status_code == 400
    assert "not valid UTF-8" in response.content.decode()
    assert not Message.objects.filter(body__contains="\ufffd").exists()
    assert not Session.objects.filter(problem__contains="\ufffd").exists()
    assert not Task.objects.filter(title__contains="\ufffd").exists()
    assert not Handoff.objects.filter(reason__contains="\ufffd").exists()
    assert not Task.objects.filter(outcome__contains="\ufffd").exists()
    assert not BaselineMeasurement.objects.filter(note__contains="\ufffd").exists()


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.method == "POST" and e.fields
                                      and e.name not in {"login", "notification_read",
                                                         "take_over", "open_step"}
                                      and not e.name.startswith("baseline")],
                         ids=lambda e: e.name)  # fmt: skip
def test_json_deep_nesting_and_surrogates_are_400_naming_the_field(personas, world, endpoint):
    c = client(personas, endpoint.who)
    url = endpoint.url(world)
    field = endpoint.fields[0]
    for raw in (
        f'{{"{field}": ' + "[" * DEEP + "]" * DEEP + "}",
        json.dumps({field: "a\ud800b"}),
        json.dumps({field: {"nested": ["x"]}}),
    ):
        response = send_json(c, endpoint, url, raw)
        assert response.status_code == 400, (raw[:40], response.content[:200])
        assert field in response.json()["errors"]


# ------------------------------------------------------------------ generated inputs

# Text a person or a program might send, including what a browser never would.
weird_text = st.one_of(
    st.text(max_size=50),
    st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Mn"])),
    st.sampled_from(["", " ", "\x00", "a\ud800b", "\udfff", "\u202e", "\ufeff", "0", "-1",
                     "2026-13-45", "01/02/2026", "9" * 40, "NaN", "null", "up", "done"]),
    st.builds(lambda n: "x" * n, st.integers(min_value=1_000, max_value=20_000)),
)  # fmt: skip
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | weird_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
form_value = st.one_of(
    st.binary(max_size=60), weird_text.map(lambda t: t.encode("utf-8", "surrogatepass"))
)


def fuzz_settings():
    return settings(
        max_examples=15,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
@fuzz_settings()
@given(data=st.data())
def test_generated_json_bodies_never_give_a_5xx(personas, world, endpoint, data):
    names = endpoint.fields + ("extra",)
    payload = data.draw(
        st.one_of(
            st.fixed_dictionaries({}, optional={name: json_value for name in names}),
            json_value,
        )
    )
    raw = json.dumps(payload, ensure_ascii=True)
    c = client(personas, endpoint.who)
    assert_no_server_error(send_json(c, endpoint, endpoint.url(world), raw), raw[:200])


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
@fuzz_settings()
@given(data=st.data(), htmx=st.booleans())
def test_generated_form_posts_never_give_a_5xx(personas, world, endpoint, data, htmx):
    names = endpoint.fields + ("extra",)
    fields = data.draw(st.fixed_dictionaries({}, optional={name: form_value for name in names}))
    body = form_body(fields)
    c = client(personas, endpoint.who)
    response = send_form(c, endpoint, endpoint.url(world), body, htmx=htmx)
    assert_no_server_error(response, body[:200])
