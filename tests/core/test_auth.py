"""Signing in and out, and where each role lands."""

import pytest

from resolutionflow.demo import DEMO_PASSWORD, PERSONAS

LANDING = {"technician": "/flowpilot/", "engineer": "/escalations/", "admin": "/analytics/"}


@pytest.mark.parametrize("persona", PERSONAS, ids=lambda p: p.username)
def test_every_demo_user_signs_in_and_lands_on_a_page_of_their_role(client, personas, persona):
    response = client.post(
        "/accounts/login/", {"username": persona.username, "password": DEMO_PASSWORD}, follow=True
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == LANDING[persona.role]
    body = response.content.decode()
    assert persona.display_name in body
    assert response.context["user"].account.slug == persona.account_slug


def test_wrong_password_says_so_and_leaks_nothing(client, personas):
    response = client.post("/accounts/login/", {"username": "tess", "password": "nope"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "correct username and password" in body
    assert "Tess Tran" not in body  # nothing about the account behind the name
    unknown = client.post("/accounts/login/", {"username": "nobody", "password": "nope"})
    assert unknown.content.decode().count("correct username and password") == 1


def test_every_page_but_sign_in_requires_sign_in(client, db):
    for path in ["/", "/flowpilot/", "/escalations/", "/analytics/"]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/login/?next=")


def test_sign_out_is_a_post_and_ends_the_session(client_for, tess):
    client = client_for(tess)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/flowpilot/").status_code == 302


@pytest.mark.parametrize(
    ("username", "path", "status"),
    [
        ("tess", "/escalations/", 403),
        ("tess", "/analytics/", 403),
        ("sam", "/analytics/", 403),
        ("sam", "/escalations/", 200),
        ("ada", "/escalations/", 200),
        ("ada", "/analytics/", 200),
    ],
)
def test_navigation_by_role_is_enforced(client_for, personas, username, path, status):
    response = client_for(personas[username]).get(path)
    assert response.status_code == status
    if status == 403:
        assert "not for your role" in response.content.decode()


def test_navigation_shows_only_what_the_role_may_open(client_for, tess, sam, ada):
    nav = {}
    for user in (tess, sam, ada):
        body = client_for(user).get("/flowpilot/").content.decode()
        nav[user.username] = (">Escalations<" in body, ">Analytics<" in body)
    assert nav == {"tess": (False, False), "sam": (True, False), "ada": (True, True)}
