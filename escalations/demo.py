"""Escalation demo data for Acme (idempotent): a live queue and a few weeks of history.

After ``make run`` Acme's queue shows two waiting escalations of Tess's (one of high
urgency), a "recently claimed" one that Sky is working, and the analytics have four weeks
of handoffs behind them: claimed, acted on within minutes, mostly resolved, one released.
Everything is made through the actions (flowpilot's and the handoff manager's) so rows,
events and notifications are what the product would store; only the timestamps are then
moved into the past with queryset updates.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.db.models import F
from django.utils import timezone

from escalations import actions
from escalations.models import (
    EmailDelivery,
    EmailState,
    Handoff,
    HandoffEvent,
    HandoffEventKind,
    Notification,
)
from flowpilot import actions as flowpilot_actions
from flowpilot.assistants.offline import OfflineAssistant
from flowpilot.models import Message, Session, Task

# Tess's FlowPilot demo sessions (flowpilot/demo.py) that wait in the queue, by problem start.
WAITING = [
    (
        "Remote staff connect to the VPN fine",
        "high",
        "Three remote users are blocked. The tunnel is up but internal names do not resolve "
        "over the VPN, and I cannot see the GlobalProtect DNS settings.",
        timedelta(minutes=14),
    ),
    (
        "Outlook keeps asking for a password",
        "normal",
        "Clearing Credential Manager did not help and it is only this user. Probably a "
        "modern-auth setting, but I do not know what is safe to change.",
        timedelta(minutes=6),
    ),
]

CLAIMED_PROBLEM = (
    "A new hire cannot see the shared Accounts mailbox in Outlook, although she was given "
    "Full Access yesterday."
)

HISTORY_PROBLEMS = [
    ("Teams calls drop after two minutes for the sales floor", "Acme HQ, sales", "various"),
    ("Mapped S: drive missing after password change", "Brightwater Dental", "BD-PC-07"),
    ("MFA prompts loop on the CFO's iPhone", "Acme HQ, finance", "iPhone 14"),
    ("Backup job fails with VSS error 0x800423f4", "Harbor Logistics", "HL-SRV-01"),
    ("Wi-Fi drops in the east meeting room", "Acme HQ, 3rd floor", "AP-3F-EAST"),
    ("Certificate warning on the intranet", "Harbor Logistics", "intranet.harbor.local"),
    ("Laptop very slow after the Windows update", "Brightwater Dental", "BD-LT-02"),
    ("Scanner to email stopped working", "Acme HQ, reception", "Ricoh IM C3000"),
    ("RDP to the accounting server refused", "Harbor Logistics", "HL-ACC-02"),
    ("Disk almost full on the file server", "Acme HQ", "FS-01"),
    ("User locked out every morning", "Brightwater Dental", "AD account j.moreno"),
    ("Shared calendar not updating on phones", "Harbor Logistics", "Exchange Online"),
]

RESOLUTION_NOTES = [
    "Stale cached credentials in the registry; cleared and re-signed in.",
    "Conditional access policy excluded the device; added it to the group.",
    "DHCP reservation fixed; queue repointed.",
    "Old VSS writer stuck; restarted the service and re-ran the job.",
    "Firmware update on the access point.",
    "Renewed the certificate and bound it in IIS.",
    "",
]

HISTORY_DAYS = 28
HISTORY_COUNT = 26


def seed(*, users: dict, stdout) -> None:
    """Create Acme's demo escalations unless Acme already has handoffs."""
    tess = users["tess"]
    if Handoff.objects.filter(account_id=tess.account_id).exists():
        return
    now = timezone.now()
    waiting = _seed_waiting(tess, now)
    claimed = _seed_recently_claimed(tess, users["sky"], now)
    history = _seed_history(tess, [users["sam"], users["sky"], users["ada"]], now)
    stdout.write(
        f"Escalations: {waiting} waiting, {claimed} recently claimed, "
        f"{history} historic handoffs in Acme."
    )


def _seed_waiting(tess, now: datetime) -> int:
    count = 0
    for problem_start, urgency, reason, age in WAITING:
        session = Session.objects.filter(
            account_id=tess.account_id, owner=tess, problem__startswith=problem_start
        ).first()
        if session is None:  # flowpilot's demo did not make it
            continue
        handoff = actions.escalate(session=session, user=tess, reason=reason, urgency=urgency)
        _move_back(handoff.handoff, escalated_at=now - age)
        _realerted_already(handoff.handoff, now)
        Session.objects.filter(pk=session.pk).update(updated_at=now - age)
        count += 1
    return count


def _seed_recently_claimed(tess, claimer, now: datetime) -> int:
    session = flowpilot_actions.start_session(
        user=tess,
        problem=CLAIMED_PROBLEM,
        customer="Acme HQ, accounts",
        device="ACC-PC-11 (Windows 11, classic Outlook)",
    )
    flowpilot_actions.answer(session=session, assistant=OfflineAssistant())
    _add_tried(session, tess, "Check the mailbox permissions", "Full Access is granted.")
    handoff = actions.escalate(
        session=session,
        user=tess,
        reason="Permissions look right and automapping should add it. No idea why it does not.",
    ).handoff
    actions.claim_handoff(handoff_id=handoff.pk, user=claimer)
    flowpilot_actions.add_task(  # noqa: S604 - a task's shell label, nothing is run
        session=session,
        user=claimer,
        title="Remove and re-add Full Access with -AutoMapping $true",
        command="Add-MailboxPermission -Identity accounts -User new.hire "
        "-AccessRights FullAccess -AutoMapping $true",
        shell="powershell",
    )
    escalated_at = now - timedelta(minutes=31)
    claimed_at = escalated_at + timedelta(minutes=9)
    _move_back(
        handoff,
        escalated_at=escalated_at,
        claimed_at=claimed_at,
        first_action_at=claimed_at + timedelta(minutes=3),
    )
    Session.objects.filter(pk=session.pk).update(
        created_at=escalated_at - timedelta(minutes=20), updated_at=claimed_at
    )
    Message.objects.filter(session=session).update(created_at=escalated_at - timedelta(minutes=18))
    return 1


def _seed_history(tess, seniors: list, now: datetime) -> int:
    """Four weeks of handoffs, getting picked up faster as the weeks go by."""
    rng = random.Random(42)  # the same history every time
    made: list[Handoff] = []
    for index in range(HISTORY_COUNT):
        days_ago = HISTORY_DAYS - int(index * HISTORY_DAYS / HISTORY_COUNT)
        day = now - timedelta(days=days_ago)
        while day.weekday() >= 5:  # office days only
            day -= timedelta(days=1)
        escalated_at = day.replace(hour=rng.randint(8, 16), minute=rng.randint(0, 59))
        problem, customer, device = HISTORY_PROBLEMS[index % len(HISTORY_PROBLEMS)]
        session = flowpilot_actions.start_session(
            user=tess, problem=problem, customer=customer, device=device
        )
        _add_tried(session, tess, "First checks from FlowPilot", "No change.")
        handoff = actions.escalate(
            session=session,
            user=tess,
            reason="Out of ideas after the first checks.",
            urgency=rng.choice(["low", "normal", "normal", "high"]),
        ).handoff
        claimer = seniors[index % len(seniors)]
        # Older weeks waited longer and took longer to start: the team got quicker.
        progress = index / HISTORY_COUNT
        wait = timedelta(minutes=max(2, round(25 - 19 * progress + rng.uniform(-4, 4))))
        act = timedelta(minutes=max(1, round(12 - 9 * progress + rng.uniform(-2, 2))))
        requeued_at = None
        if index % 11 == 5:  # now and then someone gives one back
            actions.claim_handoff(handoff_id=handoff.pk, user=claimer)
            actions.record_first_action(session=session, user=claimer, kind="message")
            _move_back(
                handoff,
                escalated_at=escalated_at,
                claimed_at=escalated_at + wait,
                first_action_at=escalated_at + wait + act,
                released_at=escalated_at + wait + act + timedelta(minutes=5),
                release_by=claimer,
            )
            handoff = Handoff.objects.get(reopened_from=handoff)
            # Re-queued: it keeps the first escalation time, and has waited since then.
            requeued_at = escalated_at + wait + act + timedelta(minutes=5)
            wait = requeued_at + timedelta(minutes=3) - escalated_at
            claimer = seniors[(index + 1) % len(seniors)]
        actions.claim_handoff(handoff_id=handoff.pk, user=claimer)
        if index % 3 == 0:  # "Get AI analysis"; the claimer's own work follows it
            Handoff.objects.filter(pk=handoff.pk).update(takeover_mode="analysis")
        actions.record_first_action(
            session=session,
            user=claimer,
            kind=rng.choice(["message", "task_recorded", "task_added"]),
        )
        resolved = index < HISTORY_COUNT - 2  # the last two are still being worked
        if resolved:
            note = RESOLUTION_NOTES[index % len(RESOLUTION_NOTES)]
            actions.resolve_handoff(handoff_id=handoff.pk, user=claimer, note=note)
        _move_back(
            handoff,
            escalated_at=escalated_at,
            requeued_at=requeued_at,
            claimed_at=escalated_at + wait,
            first_action_at=escalated_at + wait + act,
            resolved_at=escalated_at + wait + act + timedelta(minutes=rng.randint(15, 80))
            if resolved
            else None,
        )
        Session.objects.filter(pk=session.pk).update(
            created_at=escalated_at - timedelta(minutes=25),
            updated_at=escalated_at + wait + act,
        )
        Message.objects.filter(session=session).update(created_at=escalated_at)
        Task.objects.filter(session=session).update(
            created_at=escalated_at, updated_at=escalated_at
        )
        made.append(handoff)
    # History is old news: its bell items are read and its emails went out long ago.
    old = Handoff.objects.filter(session__in=[h.session_id for h in made])
    Notification.objects.filter(handoff__in=old).update(read_at=F("created_at"))
    EmailDelivery.objects.filter(handoff__in=old).update(state=EmailState.SENT, sent_at=now)
    return len(made)


def _add_tried(session: Session, user, title: str, outcome: str) -> None:
    task = flowpilot_actions.add_task(session=session, user=user, title=title)
    task.session = session
    flowpilot_actions.update_task(task=task, user=user, status="failed", outcome=outcome)


def _realerted_already(handoff: Handoff, now: datetime) -> None:
    """Record the re-alerts a demo handoff waiting this long would have had, as sent then:
    the first ``make run`` then prints no burst of "still unclaimed" emails at start-up,
    and the card still says "Overdue"."""
    handoff.refresh_from_db(fields=["created_at", "urgency"])
    minutes = timedelta(minutes=actions.realert_minutes(handoff.account_id)[handoff.urgency])
    fields = {}
    if handoff.created_at + minutes <= now:
        fields["overdue_at"] = handoff.created_at + minutes
    if handoff.created_at + 2 * minutes <= now:
        fields["admins_alerted_at"] = handoff.created_at + 2 * minutes
    if fields:
        Handoff.objects.filter(pk=handoff.pk).update(**fields)


def _move_back(
    handoff: Handoff,
    *,
    escalated_at: datetime,
    claimed_at: datetime | None = None,
    first_action_at: datetime | None = None,
    resolved_at: datetime | None = None,
    released_at: datetime | None = None,
    release_by=None,
    requeued_at: datetime | None = None,
) -> None:
    """Rewrite a handoff's timeline (and its events and notifications) into the past.

    ``escalated_at`` is the first escalation; ``requeued_at`` when a release re-queued it.

    With ``release_by`` the (claimed) handoff is released first, through the action.
    """
    if release_by is not None:
        actions.release_handoff(handoff_id=handoff.pk, user=release_by)
    fields = {"created_at": escalated_at}
    if requeued_at:
        fields["queued_at"] = requeued_at
    if claimed_at:
        fields["claimed_at"] = claimed_at
    if first_action_at:
        fields["first_action_at"] = first_action_at
    if resolved_at:
        fields["resolved_at"] = resolved_at
    if released_at:
        fields["released_at"] = released_at
    Handoff.objects.filter(pk=handoff.pk).update(**fields)
    times = {
        HandoffEventKind.ESCALATED: requeued_at or escalated_at,
        HandoffEventKind.CLAIMED: claimed_at,
        HandoffEventKind.FIRST_ACTION: first_action_at,
        HandoffEventKind.RESOLVED: resolved_at,
        HandoffEventKind.RELEASED: released_at,
    }
    for kind, when in times.items():
        if when:
            HandoffEvent.objects.filter(handoff=handoff, kind=kind).update(created_at=when)
    Notification.objects.filter(handoff=handoff).update(created_at=claimed_at or escalated_at)
