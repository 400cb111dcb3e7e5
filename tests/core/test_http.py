"""resolutionflow.http: who wants JSON, what a POST body says, where to go after a POST."""

import pytest
from django.test import RequestFactory

from resolutionflow.http import BadRequestBody, request_data, see_other, wants_json

factory = RequestFactory()


def get(accept: str | None = None, *, htmx: bool = False):
    headers = {"Accept": accept} if accept is not None else {}
    request = factory.get("/", headers=headers)
    request.htmx = htmx
    return request


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", True),
        ("application/json, text/plain, */*", True),  # axios, fetch wrappers
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),  # browsers
        ("*/*", False),
        (None, False),
        ("text/html, application/json;q=0.5", False),  # a substring test said JSON
        ("application/json;q=0, text/html", False),  # q=0 refuses JSON
        ("text/plain", False),
    ],
)
def test_wants_json_negotiates_json_against_html(accept, expected):
    assert wants_json(get(accept)) is expected


def test_htmx_always_gets_html():
    assert wants_json(get("application/json", htmx=True)) is False


def post_json(body: str):
    return factory.post("/", data=body, content_type="application/json")


def test_request_data_reads_form_posts_and_json_objects_of_strings():
    form = factory.post("/", {"reason": "Stuck"})
    assert request_data(form)["reason"] == "Stuck"
    assert request_data(post_json('{"reason": "Stuck", "urgency": null}')) == {"reason": "Stuck"}
    assert request_data(post_json("")) == {}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ('{"reason": ["x"]}', {"reason": ["Must be a string."]}),
        (
            '{"reason": 7, "urgency": {"a": 1}}',
            {"reason": ["Must be a string."], "urgency": ["Must be a string."]},
        ),
        ("[1, 2]", {"__all__": ["Send a JSON object."]}),
        ('"text"', {"__all__": ["Send a JSON object."]}),
        ("{not json", {"__all__": ["The body is not valid JSON."]}),
        (b"\xff\xfe", {"__all__": ["The body is not valid JSON."]}),
    ],
)
def test_request_data_refuses_what_no_form_can_read(body, errors):
    with pytest.raises(BadRequestBody) as refused:
        request_data(post_json(body))
    assert refused.value.errors == errors


def test_see_other_is_a_303_for_a_form_post_and_hx_redirect_for_htmx():
    plain = factory.post("/")
    plain.htmx = False
    response = see_other(plain, "/handoffs/1/")
    assert (response.status_code, response["Location"]) == (303, "/handoffs/1/")

    htmx = factory.post("/")
    htmx.htmx = True
    response = see_other(htmx, "/handoffs/1/")
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/handoffs/1/"
    assert "Location" not in response
