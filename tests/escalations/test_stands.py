"""'Where it stands' on the handoff screen and the claimer's chat panel (issue 17)."""

from __future__ import annotations

from html import unescape

import pytest
from django.urls import reverse

from escalations import actions
from escalations.models import Handoff
from flowpilot.models import Message, MessageRole, Session, Task, TaskStatus

pytestmark = pytest.mark.django_db


def stands_of(page: str) -> str:
    """The box's text, tags dropped, entities read, spaces collapsed."""
    start = page.rindex("<section", 0, page.index('id="where-it-stands"'))
    box = page[start : page.index("</section>", start)]
    text = ""
    inside = False
    for char in box:
        if char == "<":
            inside = True
        elif char == ">":
            inside = False
            text += " "
        elif not inside:
            text += char
    return " ".join(unescape(text).split())


def escalate(session: Session) -> Handoff:
    return actions.escalate(
        session=session, user=session.owner, reason="Out of ideas", urgency="high"
    ).handoff


def test_a_recorded_outcome_that_confirms_the_cause_is_the_quoted_fact(tess, sam, client_for):
    # The DNS case of issue 14: Tess recorded on the check what she found and did.
    session = Session.objects.create(
        account_id=tess.account_id,
        owner=tess,
        problem="Leeds office cannot resolve intranet.corp.local or the file server by name",
        device="Windows 11",
    )
    said = "DNS Server service was stopped; started it; names resolve again"
    Task.objects.create(
        session=session,
        position=0,
        title="Check the DNS server service and forwarders",
        status=TaskStatus.DONE,
        outcome=said,
        created_by=tess,
    )
    Task.objects.create(
        session=session,
        position=1,
        title="Flush the DNS cache",
        status=TaskStatus.FAILED,
        outcome="No change",
        created_by=tess,
    )
    handoff = escalate(session)

    page = client_for(sam).get(reverse("escalations:handoff", args=[handoff.pk])).content.decode()

    box = stands_of(page)
    lead = "The DNS server or its forwarders are failing"
    assert box.startswith(f"Where it stands Most likely {lead}")
    assert "High confidence" in box
    assert (
        f"Because Step \u201cCheck the DNS server service and forwarders\u201d \u2014 done: {said}"
    ) in box
    assert "Not clear" not in box
    # The next step is the one the assessment ranks first, with its command to copy.
    stored = Handoff.objects.get(pk=handoff.pk).assessment
    first = stored["next_steps"][0]
    assert f"Next {first['title']}" in box
    if first["command"]:
        assert 'class="stands-command"' in page and "Copy command" in page
    # The box sits between the header and the assessment; "What was tried" puts the
    # failed step first although it is second in the lane, and keeps the lane a click away.
    assert page.index('id="handoff-header"') < page.index('id="where-it-stands"')
    assert page.index('id="where-it-stands"') < page.index('id="assessment-card"')
    tried = page[page.index('id="handoff-tried"') : page.index('class="tried-lane"')]
    assert tried.index("Flush the DNS cache") < tried.index("Check the DNS server service")
    assert "The full lane, in order (2 steps)" in page
    # The assessment no longer repeats the problem and the reason in a summary paragraph.
    card = page[page.index('id="assessment-card"') : page.index('id="handoff-tried"')]
    assert "Out of ideas" not in card and "Leeds office cannot resolve" not in card


def test_a_message_is_quoted_as_what_the_junior_wrote(tess, sam, client_for):
    # The MFA Conditional Access case, told in the chat instead of on a task.
    session = Session.objects.create(
        account_id=tess.account_id,
        owner=tess,
        problem="Since yesterday the whole finance team is asked for MFA every time in Outlook",
        device="Windows 11",
    )
    said = "CA policy Finance MFA: sign-in frequency changed to Every time yesterday"
    Message.objects.create(session=session, role=MessageRole.USER, author=tess, body=said)
    handoff = escalate(session)

    page = client_for(sam).get(reverse("escalations:handoff", args=[handoff.pk])).content.decode()

    box = stands_of(page)
    assert "Most likely A Conditional Access policy blocks or loops" in box
    assert f"Because Tess Tran wrote {said}" in box


def test_weak_evidence_says_it_is_not_clear_and_what_to_ask(tess, sam, client_for):
    session = Session.objects.create(
        account_id=tess.account_id,
        owner=tess,
        problem="User can't open the S: mapped drive on the file server",
    )
    Message.objects.create(
        session=session,
        role=MessageRole.USER,
        author=tess,
        body="Actually it's only when she's on the VPN from home.",
    )
    handoff = escalate(session)
    stored = Handoff.objects.get(pk=handoff.pk).assessment
    assert stored["confidence"] == "low"
    options = stored["unclear"]["options"]
    assert options == ["VPN connection", "Mapped drives and share permissions"]

    page = client_for(sam).get(reverse("escalations:handoff", args=[handoff.pk])).content.decode()

    box = stands_of(page)
    assert box.startswith(f"Where it stands Not clear yet: {' or '.join(options)} \u2014 ask Tess:")
    assert stored["unclear"]["ask"].rstrip("?")[:40] in box
    assert "Most likely" not in box
    assert 'class="stands stands-unclear"' in page

    # Once resolved it says where it stood, and asks nobody anything.
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)
    actions.resolve_handoff(handoff_id=handoff.pk, user=sam, note="VPN profile re-pushed")
    page = client_for(sam).get(reverse("escalations:handoff", args=[handoff.pk])).content.decode()
    box = stands_of(page)
    assert box == f"Where it stood Not clear: {' or '.join(options)}"


def test_the_claimers_chat_panel_is_headed_by_the_box_and_it_refetches_alone(
    tess, sam, gwen, client_for
):
    session = Session.objects.create(
        account_id=tess.account_id,
        owner=tess,
        problem="Since yesterday the whole finance team is asked for MFA every time in Outlook",
    )
    handoff = escalate(session)
    actions.claim_handoff(handoff_id=handoff.pk, user=sam)

    panel = client_for(sam).get(reverse("escalations:session_panel", args=[session.pk]))
    html = panel.content.decode()
    assert html.index('id="where-it-stands"') < html.index('id="lane-chips"')
    # Live: it refetches itself when the chat's stream announces a new assessment.
    stands_url = reverse("escalations:stands", args=[handoff.pk])
    assert f'hx-get="{stands_url}"' in html and 'hx-trigger="rf:assessment from:body"' in html

    alone = client_for(sam).get(stands_url)
    assert alone.status_code == 200
    assert alone.content.decode().lstrip().startswith('<section class="stands')
    assert stands_of(alone.content.decode()) == stands_of(html)
    assert client_for(gwen).get(stands_url).status_code == 404
    assert client_for(sam).post(stands_url).status_code == 405


def test_an_assessment_stored_before_the_box_still_reads(tess, sam, client_for):
    # Stored by an earlier version: a fact without its parts, no "unclear".
    session = Session.objects.create(
        account_id=tess.account_id, owner=tess, problem="Printer prints nothing"
    )
    handoff = escalate(session)
    old = Handoff.objects.get(pk=handoff.pk).assessment
    old.pop("unclear", None)
    old["confidence"] = "medium"
    old["causes"] = [{"title": "Stuck print queue", "why": ""}]
    old["fact"] = {"quote": "jobs stay queued", "source": "Dana's message", "cause": "x"}
    Handoff.objects.filter(pk=handoff.pk).update(assessment=old)

    page = client_for(sam).get(reverse("escalations:handoff", args=[handoff.pk])).content.decode()

    box = stands_of(page)
    assert "Most likely Stuck print queue Medium confidence" in box
    assert "Because From Dana's message: jobs stay queued" in box
