"""The one request-body parser (resolutionflow.http.request_data): every body no form can
read is a 400 naming the field, never a 500 and never text stored garbled."""

from __future__ import annotations

import json

import pytest
from django.test import RequestFactory, override_settings

from resolutionflow.http import MAX_JSON_DEPTH, BadRequestBody, request_data

factory = RequestFactory()


def refused(body: bytes | str, content_type: str = "application/json") -> dict:
    with pytest.raises(BadRequestBody) as refusal:
        request_data(factory.post("/", data=body, content_type=content_type))
    return refusal.value.errors


def test_a_lone_surrogate_is_refused_naming_the_field():
    errors = refused('{"problem": "a\\ud800b", "customer": "Acme"}')
    assert list(errors) == ["problem"]
    assert "not valid Unicode" in errors["problem"][0]


def test_a_surrogate_pair_is_ordinary_text():
    data = request_data(
        factory.post("/", data='{"problem": "\\ud83d\\ude00"}', content_type="application/json")
    )
    assert data == {"problem": "😀"}


def test_a_lone_surrogate_in_a_field_name_is_refused():
    assert list(refused('{"a\\udc00": "x"}')) == ["__all__"]


def test_nesting_100000_deep_in_a_field_is_refused_naming_the_field():
    body = '{"customer": "Acme", "problem": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert refused(body) == {"problem": ["Must be a string."]}


def test_nesting_100000_deep_as_the_body_is_refused():
    errors = refused("[" * 100_000 + "]" * 100_000)
    assert list(errors) == ["__all__"]


def test_brackets_inside_strings_are_not_nesting():
    text = "[" * (MAX_JSON_DEPTH * 3) + ' a "quoted" \\ word'
    data = request_data(
        factory.post("/", data=json.dumps({"body": text}), content_type="application/json")
    )
    assert data == {"body": text}


def test_nesting_just_past_the_limit_is_refused_and_at_the_limit_is_a_type_error():
    at_limit = '{"body": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    past = '{"body": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}"
    assert refused(at_limit) == {"body": ["Must be a string."]}
    assert refused(past) == {"body": ["Must be a string."]}


@pytest.mark.parametrize(
    ("value", "field"),
    [(1, "body"), (True, "body"), ({"a": "b"}, "body"), (["x"], "body"), (1.5, "body")],
)
def test_wrong_types_are_refused_naming_the_field(value, field):
    assert refused(json.dumps({field: value})) == {field: ["Must be a string."]}


def test_invalid_utf8_in_a_json_body_is_refused():
    assert list(refused(b'{"body": "caf\xe9"}')) == ["__all__"]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_upload_limit_is_refused():
    errors = refused(json.dumps({"body": "x" * 2000}))
    assert errors == {"__all__": ["The body is too large; send less text."]}


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_form_post_over_the_upload_limit_is_refused():
    errors = refused(b"body=" + b"x" * 2000, "application/x-www-form-urlencoded")
    assert errors == {"__all__": ["The body is too large; send less text."]}


def test_invalid_utf8_in_a_form_post_is_refused_naming_the_field():
    errors = refused(b"customer=Acme&problem=caf%E9+au+lait", "application/x-www-form-urlencoded")
    assert errors == {"problem": ["Is not valid UTF-8 text."]}


def test_raw_invalid_utf8_bytes_in_a_form_post_are_refused():
    errors = refused(b"problem=caf\xe9", "application/x-www-form-urlencoded")
    assert errors == {"problem": ["Is not valid UTF-8 text."]}


def test_utf8_form_posts_read_as_before():
    request = factory.post(
        "/",
        data="problem=Caf%C3%A9+%F0%9F%98%80&customer=",
        content_type="application/x-www-form-urlencoded",
    )
    assert request_data(request)["problem"] == "Café 😀"


def test_the_refusal_reads_as_a_sentence_naming_the_field():
    with pytest.raises(BadRequestBody) as refusal:
        request_data(
            factory.post("/", data=b"problem=%FF", content_type="application/x-www-form-urlencoded")
        )
    assert str(refusal.value) == "problem: Is not valid UTF-8 text."
