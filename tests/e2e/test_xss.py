"""XSS in Chromium: payloads in every user-controlled field, on every page that shows it.

Each payload calls ``__xss(n)`` (a function the test defines in every page before the app's
scripts) or ``alert``. A page is clean when, after it loaded and its scripts ran:

- ``__xss`` was never called and no dialog opened (execution);
- no element carries an event-handler attribute, a ``javascript:`` / ``data:`` URL, an
  ``hx-on`` attribute or a ``<script>``/``<iframe>``/``<object>``/``<embed>``/``<base>`` that
  came from a payload (markup that escaped escaping, which the CSP alone would only stop).

Pages are loaded once with the app's CSP and, where payloads of many rows meet on one page,
once more with the CSP bypassed (Playwright's ``bypass_csp``): a payload that the CSP blocked
would run there. The per-payload pages (a chat, a handoff) are loaded with the CSP bypassed.

Fields: the session's problem (and title), customer, device; the technician's and the
assistant's messages (the assistant's rendered as Markdown); a step's title, detail, command
and outcome; the escalation reason; the senior's resolution note and the technician's
"what fixed it" line; the assistant's note; a person's display name; the baseline note; the
bell's notification text (built from the problem).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.models import BaselineMeasurement
from escalations import actions as escalation_actions
from escalations.models import Handoff
from flowpilot.models import Message, Session, Task
from resolutionflow.models import User

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>__xss({n})</script>",
    "<img src=x onerror=__xss({n})>",
    "<svg onload=__xss({n})>",
    "<svg><script>__xss({n})</script></svg>",
    '"><img src=x onerror=__xss({n})>',
    "'><img src=x onerror=__xss({n})>",
    "</textarea><img src=x onerror=__xss({n})>",
    "</title><img src=x onerror=__xss({n})>",
    "</script><script>__xss({n})</script>",
    "<body onload=__xss({n})>",
    '<iframe srcdoc="<script>parent.__xss({n})</script>"></iframe>',
    "<details open ontoggle=__xss({n})>x</details>",
    '<a href="javascript:__xss({n})">click</a>',
    "[click](javascript:__xss({n}))",
    '![x](x" onerror="__xss({n}))',
    "<math><mtext></table><img src=x onerror=__xss({n})>",
    "<input autofocus onfocus=__xss({n})>",
    "<video><source onerror=__xss({n})></video>",
    "<audio src=x onerror=__xss({n})>",
    '<object data="javascript:__xss({n})"></object>',
    '<embed src="javascript:__xss({n})">',
    "<marquee onstart=__xss({n})>m</marquee>",
    "{{{{constructor.constructor('__xss({n})')()}}}}",
    "${{__xss({n})}}",
    "<style>@import 'javascript:__xss({n})';</style>",
    "<form><button formaction=javascript:__xss({n})>x</button></form>",
    "<img src=x:x onerror=&#95;&#95;xss({n})>",
    "<IMG SRC=x OnErRoR=__xss({n})>",
    "<img/src=x/onerror=__xss({n})>",
    "<svg/onload=__xss({n})//",
    "javascript:__xss({n})",
    'https://example.com/"><img src=x onerror=__xss({n})>',
    "<https://example.com/?a=<img src=x onerror=__xss({n})>>",
    '[x](https://a.example/" onmouseover="__xss({n}))',
    "`<img src=x onerror=__xss({n})>`",
    "```\n<script>__xss({n})</script>\n```",
    '<div hx-get="/" hx-trigger="load" hx-on::after-request="__xss({n})">h</div>',
    '<div hx-on:click="__xss({n})">h</div>',
    '<div data-hx-on-load="__xss({n})">h</div>',
    '<span hx-trigger="load" hx-get="javascript:__xss({n})">h</span>',
    '<a href="data:text/html,<script>__xss({n})</script>">d</a>',
    '<base href="javascript:__xss({n})//">',
    '<meta http-equiv="refresh" content="0;url=javascript:__xss({n})">',
    '<img src="x" onerror="__xss({n})"',
    "<scr<script>ipt>__xss({n})</scr</script>ipt>",
    "\\u003cscript\\u003e__xss({n})\\u003c/script\\u003e",
    "</div><script>__xss({n})</script>",
    "<svg><animate onbegin=__xss({n}) attributeName=x dur=1s>",
    "<x contenteditable autofocus onfocus=__xss({n})>focus</x>",
    "<img src=x onerror=\"window['__x'+'ss']({n})\">",
    '<noscript><p title="</noscript><img src=x onerror=__xss({n})>"></noscript>',
    '<!--<img src="--><img src=x onerror=__xss({n})//">',
    '<table><td background="javascript:__xss({n})">t</td></table>',
    "＜script＞__xss({n})＜/script＞",
    "%3Cscript%3E__xss({n})%3C/script%3E",
    '<a href="&#106;avascript:__xss({n})">e</a>',
    '<svg><a xlink:href="javascript:__xss({n})"><text y=20>x</text></a></svg>',
    "<select autofocus onfocus=__xss({n})></select>",
    '<img src=x onerror="alert({n})">',
    "**bold** [link](https://example.com/?q=<script>__xss({n})</script>)",
]

INIT_SCRIPT = """
window.__xssHits = [];
window.__xss = function (n) { window.__xssHits.push(String(n)); };
"""

# Markup a payload may have smuggled in: event handlers, script URLs, htmx's inline handlers
# and elements that run or load code. The app's own markup has none of these with "__xss".
SCAN_SCRIPT = """
() => {
  const found = [];
  const urlAttrs = ["href", "src", "action", "formaction", "data", "background", "xlink:href",
                    "srcdoc", "content"];
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      const value = attr.value || "";
      const hasMark = value.includes("__xss") || value.includes("alert(");
      if (name.startsWith("on") && hasMark) found.push(`${el.tagName} ${name}=${value}`);
      if ((name.startsWith("hx-on") || name.startsWith("data-hx-on")) && hasMark)
        found.push(`${el.tagName} ${name}=${value}`);
      // An https link is harmless here (whether the model's links are clickable is another
      // test's); a script or data URL, or a srcdoc, is not.
      if (urlAttrs.includes(name) && /^\\s*(javascript|data|vbscript):/i.test(value))
        found.push(`${el.tagName} ${name}=${value}`);
      if ((name === "srcdoc" || name === "content") && hasMark)
        found.push(`${el.tagName} ${name}=${value}`);
    }
    const tag = el.tagName.toLowerCase();
    if (["script", "iframe", "object", "embed", "base"].includes(tag)) {
      const text = (el.textContent || "") + (el.getAttribute("src") || "") +
                   (el.getAttribute("href") || "");
      if (text.includes("__xss") || tag === "iframe" || tag === "object" || tag === "embed"
          || (tag === "base" && el.getAttribute("href")))
        found.push(`${tag}: ${text.slice(0, 80)}`);
    }
  }
  return found;
}
"""


def payload(index: int) -> str:
    return PAYLOADS[index].format(n=index)


class XssWorld:
    """Every payload in every field: one session per payload (escalated, so it is on the
    queue, in the bell and on its handoff page), and one carrier session that holds every
    payload as a message of each kind and as a step."""

    def __init__(self, tess: User, sam: User, ada: User) -> None:
        self.sessions: list[Session] = []
        self.handoffs: list[Handoff] = []
        account = tess.account
        for index in range(len(PAYLOADS)):
            text = payload(index)
            session = Session.objects.create(
                account=account,
                owner=tess,
                problem=text,
                customer=text[:200],
                device=text[:200],
            )
            Message.objects.create(session=session, role="user", author=tess, body=text)
            Message.objects.create(
                session=session, role="assistant", engine="claude", body=text, note=text[:300]
            )
            Task.objects.create(
                session=session,
                position=0,
                title=text[:200],
                detail=text,
                command=text,
                outcome=text,
                status="failed",
                created_by=tess,
            )
            handoff = escalation_actions.escalate(
                session=session, user=tess, reason=text, urgency="high"
            ).handoff
            if index % 2:
                # Half are resolved, with the payload as the senior's resolution note.
                escalation_actions.claim_handoff(handoff_id=handoff.pk, user=sam)
                escalation_actions.resolve_handoff(handoff_id=handoff.pk, user=sam, note=text)
            self.sessions.append(session)
            self.handoffs.append(handoff)
            timer = User.objects.create(
                username=f"timer{index}", account=account, role="engineer", display_name=text[:150]
            )
            BaselineMeasurement.objects.create(
                account=account,
                minutes=5 + index % 20,
                measured_on=timezone.localdate() - timedelta(days=1 + index % 20),
                timed_by=timer,
                note=text[:300],
            )
        self.carrier = Session.objects.create(
            account=account, owner=tess, problem="Carrier of every payload", customer="Carrier"
        )
        for index in range(len(PAYLOADS)):
            text = payload(index)
            Message.objects.create(session=self.carrier, role="user", author=tess, body=text)
            Message.objects.create(
                session=self.carrier, role="assistant", engine="claude", body=text, note=text[:300]
            )
            Message.objects.create(
                session=self.carrier, role="system", body=f"Resolved. What fixed it: {text}"
            )
            Task.objects.create(
                session=self.carrier,
                position=index,
                title=text[:200],
                detail=text,
                command=text,
                outcome=text,
                status="done" if index % 2 else "todo",
                created_by=tess,
            )
        self.carrier_handoff = escalation_actions.escalate(
            session=self.carrier, user=tess, reason="Carrier reason", urgency="normal"
        ).handoff
        # Claimed by sam: the chat page shows its claimer panel and the takeover parts.
        escalation_actions.claim_handoff(handoff_id=self.carrier_handoff.pk, user=sam)


@pytest.fixture
def xss_world(transactional_db, personas, settings):
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    return XssWorld(personas["tess"], personas["sam"], personas["ada"])


class Visitor:
    """One signed-in browser context (CSP kept or bypassed) that records what ran."""

    def __init__(self, browser, base_url: str, user: User, *, bypass_csp: bool) -> None:
        from django.test import Client

        self.context = browser.new_context(base_url=base_url, bypass_csp=bypass_csp)
        self.context.set_default_timeout(15000)
        self.context.add_init_script(INIT_SCRIPT)
        client = Client()
        client.force_login(user)
        self.context.add_cookies(
            [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}]
        )
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", self._dialog)
        self.loads = 0
        self.label = f"{user.username}{' (CSP bypassed)' if bypass_csp else ''}"

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def visit(self, path: str, *, then=None) -> list[str]:
        """Load ``path`` (and run ``then(page)``); what executed or was smuggled in."""
        response = self.page.goto(path, wait_until="load")
        assert response is not None and response.status == 200, (path, response and response.status)
        self.loads += 1
        if then is not None:
            then(self.page)
        self.page.wait_for_timeout(50)  # handlers of failed images, autofocus, htmx "load"
        problems = [f"executed __xss({hit})" for hit in self.page.evaluate("window.__xssHits")]
        problems += [f"dialog {message}" for message in self.dialogs]
        problems += self.page.evaluate(SCAN_SCRIPT)
        self.dialogs.clear()
        return [f"{self.label} {path}: {problem}" for problem in problems]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visitors(browser, asgi_server):
    opened = []

    def make(user, *, bypass_csp: bool) -> Visitor:
        visitor = Visitor(browser, asgi_server.url, user, bypass_csp=bypass_csp)
        opened.append(visitor)
        return visitor

    yield make
    for visitor in opened:
        visitor.close()


def open_bell(page) -> None:
    page.locator("#bell-button").click()
    page.locator("#bell-menu .bell-item").first.wait_for()


def test_there_are_at_least_fifty_payloads():
    assert len(PAYLOADS) >= 50
    assert len(set(PAYLOADS)) == len(PAYLOADS)


def test_no_payload_runs_on_any_page_that_shows_it(xss_world, visitors, tess, sam, ada):
    """One world (building it takes most of the time), every page over it."""
    many = pages_that_show_many(xss_world, visitors, tess, sam, ada)
    own = own_chat_and_handoff_pages(xss_world, visitors, tess, sam)
    problems = many + own
    assert problems == [], "\n".join(problems[:30])


def pages_that_show_many(xss_world, visitors, tess, sam, ada) -> list[str]:
    """Lists and the carrier session: every payload on one page, with and without the CSP."""
    problems: list[str] = []
    loads = 0
    for bypass_csp in (False, True):
        technician = visitors(tess, bypass_csp=bypass_csp)
        for page_number in (1, 2, 3):
            problems += technician.visit(f"/flowpilot/?page={page_number}")
        problems += technician.visit(f"/flowpilot/sessions/{xss_world.carrier.pk}/")
        problems += technician.visit(f"/handoffs/{xss_world.carrier_handoff.pk}/")
        senior = visitors(sam, bypass_csp=bypass_csp)
        problems += senior.visit("/escalations/")
        problems += senior.visit("/escalations/", then=open_bell)
        problems += senior.visit("/escalations/recent/")
        problems += senior.visit(f"/handoffs/{xss_world.carrier_handoff.pk}/")
        problems += senior.visit(f"/flowpilot/sessions/{xss_world.carrier.pk}/")
        admin = visitors(ada, bypass_csp=bypass_csp)
        problems += admin.visit("/analytics/baseline/")
        problems += admin.visit("/analytics/")
        problems += admin.visit("/escalations/")
        loads += technician.loads + senior.loads + admin.loads
    assert loads == 26
    return problems


def own_chat_and_handoff_pages(xss_world, visitors, tess, sam) -> list[str]:
    """One payload per session: its chat page (header, messages, lane) and its handoff page
    (the package), for its technician and for a senior; the CSP bypassed."""
    problems: list[str] = []
    technician = visitors(tess, bypass_csp=True)
    senior = visitors(sam, bypass_csp=True)
    for session, handoff in zip(xss_world.sessions, xss_world.handoffs, strict=True):
        problems += technician.visit(f"/flowpilot/sessions/{session.pk}/")
        problems += senior.visit(f"/handoffs/{handoff.pk}/")
    assert technician.loads == senior.loads == len(PAYLOADS)
    return problems


def test_the_detector_sees_a_payload_that_runs(visitors, asgi_server, tess, browser):
    """The check can fail: a page where a payload does run is reported."""
    visitor = visitors(tess, bypass_csp=True)
    visitor.page.goto("/flowpilot/")
    visitor.page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=__xss(99)>')"
    )
    visitor.page.wait_for_timeout(200)
    assert visitor.page.evaluate("window.__xssHits") == ["99"]
    assert any("onerror" in found for found in visitor.page.evaluate(SCAN_SCRIPT))
