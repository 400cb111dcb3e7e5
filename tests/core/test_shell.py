"""The base layout: CSP, CSRF header for htmx, toasts on full pages and over HX-Trigger."""

import json
import re

from django.contrib import messages
from django.http import HttpResponse
from django.test import RequestFactory

from escalations import actions
from flowpilot.models import Session
from resolutionflow.middleware import HtmxMessagesMiddleware


def test_pages_carry_a_nonce_csp_without_unsafe_inline(client_for, tess):
    response = client_for(tess).get("/flowpilot/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    body = response.content.decode()
    assert "<script>" not in body and " onclick=" not in body
    assert 'hx-headers=\'{"x-csrftoken": "' in body
    assert "/static/vendor/htmx-2.0.11.min.js" in body
    assert "/static/vendor/htmx-ext-sse-2.2.4.js" in body


def _with_message(request, text):
    from django.contrib.messages.storage.fallback import FallbackStorage

    request.session = {}
    request._messages = FallbackStorage(request)
    messages.success(request, text)


def test_htmx_requests_get_messages_as_an_hx_trigger_event():
    request = RequestFactory().post("/x", headers={"HX-Request": "true"})
    request.htmx = True
    _with_message(request, "Escalated — 3 seniors notified")
    response = HtmxMessagesMiddleware(lambda r: HttpResponse("ok"))(request)
    payload = json.loads(response["HX-Trigger"])
    assert payload["messages"] == [{"message": "Escalated — 3 seniors notified", "tags": "success"}]


def test_messages_merge_with_an_existing_hx_trigger_and_survive_redirects():
    request = RequestFactory().post("/x")
    request.htmx = True
    _with_message(request, "Saved")

    def view(r):
        response = HttpResponse("ok")
        response["HX-Trigger"] = json.dumps({"rf:first-action": {"handoff": "h"}})
        return response

    payload = json.loads(HtmxMessagesMiddleware(view)(request)["HX-Trigger"])
    assert payload["rf:first-action"] == {"handoff": "h"}
    assert payload["messages"][0]["message"] == "Saved"

    redirected = RequestFactory().post("/x")
    redirected.htmx = True
    _with_message(redirected, "Kept for the next page")

    def redirecting(r):
        response = HttpResponse("")
        response["HX-Redirect"] = "/flowpilot/"
        return response

    response = HtmxMessagesMiddleware(redirecting)(redirected)
    assert "HX-Trigger" not in response
    assert [str(m) for m in redirected._messages] == ["Kept for the next page"]


def test_background_htmx_gets_leave_messages_for_the_next_page():
    request = RequestFactory().get("/bell", headers={"HX-Request": "true"})
    request.htmx = True
    _with_message(request, "It's yours.")
    response = HtmxMessagesMiddleware(lambda r: HttpResponse("bell"))(request)
    assert "HX-Trigger" not in response
    assert [str(m) for m in request._messages] == ["It's yours."]


def test_full_pages_render_pending_messages_as_toasts(client_for, tess):
    client = client_for(tess)
    # A message left by a previous request shows on the next full page.
    session = client.session
    session.save()
    from django.contrib.messages.storage.cookie import CookieStorage

    storage = CookieStorage(RequestFactory().get("/"))
    response = HttpResponse()
    storage.add(messages.SUCCESS, "Welcome back")
    storage.update(response)
    client.cookies["messages"] = response.cookies["messages"].value
    body = client.get("/flowpilot/").content.decode()
    assert 'class="toast toast-success">Welcome back<' in body


def test_unknown_pages_get_a_friendly_404(client_for, tess):
    response = client_for(tess).get("/no/such/page/")
    assert response.status_code == 404
    assert "Nothing here" in response.content.decode()


def test_every_script_tag_of_every_page_carries_the_csp_nonce(client_for, personas):
    tess, sam, ada = personas["tess"], personas["sam"], personas["ada"]
    session = Session.objects.create(account=tess.account, owner=tess, problem="Scanner offline")
    handoff = actions.escalate(session=session, user=tess, reason="Stuck").handoff
    pages = [
        (tess, "/flowpilot/"),
        (tess, f"/flowpilot/sessions/{session.pk}/"),
        (sam, "/escalations/"),
        (sam, f"/handoffs/{handoff.pk}/"),
        (ada, "/analytics/"),
        (ada, "/analytics/baseline/"),
    ]
    for user, path in pages:
        response = client_for(user).get(path)
        assert response.status_code == 200, path
        nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
        scripts = re.findall(r"<script\b[^>]*>", response.content.decode())
        assert scripts, path
        for tag in scripts:
            assert f'nonce="{nonce}"' in tag, (path, tag)
