"""FlowPilot's demo data: three of Tess's Acme sessions, worked part-way (idempotent).

Built through the actions with the offline engine, so the history, the lane and the
outcome notes are what the product itself would have stored. Timestamps are then moved
into the past so the lists read like a real working day.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import F

from flowpilot import actions
from flowpilot.assistants.offline import OfflineAssistant
from flowpilot.models import Message, Session, Task


@dataclass(frozen=True)
class DemoSession:
    problem: str
    customer: str
    device: str
    # (task position in the lane, status, outcome) applied after the first reply
    outcomes: tuple[tuple[int, str, str], ...]
    follow_up: str
    age: timedelta
    later_outcomes: tuple[tuple[int, str, str], ...] = field(default=())


DEMO_SESSIONS = (
    DemoSession(
        problem=(
            "Outlook keeps asking for a password on the front-desk PC since the Microsoft 365 "
            "move last Friday. The user types it and the prompt comes back a few minutes later."
        ),
        customer="Brightwater Dental, front desk",
        device="FD-PC-02 (Windows 11, classic Outlook)",
        outcomes=(
            (1, "done", "Outlook on the web works with the same password: the account is fine."),
            (
                2,
                "failed",
                "Removed six MicrosoftOffice16 entries from Credential Manager; the prompt "
                "came back after a restart.",
            ),
        ),
        follow_up=(
            "OWA works for her, and clearing Credential Manager did not help: it still "
            "prompts after a reboot. Only this user, classic Outlook."
        ),
        age=timedelta(minutes=35),
    ),
    DemoSession(
        problem=(
            "Remote staff connect to the VPN fine, but internal sites and servers do not load "
            "once connected."
        ),
        customer="Harbor Logistics",
        device="HL-LT-14 (Windows 11, GlobalProtect)",
        outcomes=(
            (1, "done", "GlobalProtect log shows the tunnel up, no errors."),
            (2, "done", "Internet works with and without the VPN."),
            (3, "skipped", "Not needed: the tunnel connects, so the gateway port is open."),
        ),
        follow_up=(
            "Tunnel is up, but \\\\fs01 and the intranet do not resolve: nslookup "
            "intranet.harbor.local times out while on the VPN."
        ),
        age=timedelta(hours=3, minutes=10),
    ),
    DemoSession(
        problem="The second-floor printer shows offline for everyone since this morning.",
        customer="Acme HQ, 2nd floor",
        device="HP LaserJet M507 (PRN-2F-01)",
        outcomes=(
            (1, "done", "Display says Ready; the configuration page prints fine."),
            (
                2,
                "failed",
                "Ping to 192.168.1.50 times out. The config page shows 192.168.1.87 now: it "
                "took a new DHCP lease.",
            ),
        ),
        follow_up=(
            "The printer came back on a new IP (192.168.1.87) after a power cut; the queue "
            "still points at .50."
        ),
        age=timedelta(days=1, hours=2),
    ),
)


def seed(*, users: dict, stdout) -> None:
    """Create Tess's demo sessions unless they exist (matched by their problem text)."""
    tess = users["tess"]
    engine = OfflineAssistant()
    created = 0
    for demo in DEMO_SESSIONS:
        if Session.objects.filter(account_id=tess.account_id, problem=demo.problem).exists():
            continue
        session = actions.start_session(
            user=tess, problem=demo.problem, customer=demo.customer, device=demo.device
        )
        actions.answer(session=session, assistant=engine)
        _apply_outcomes(session, tess, demo.outcomes)
        actions.post_message(session=session, user=tess, body=demo.follow_up, assistant=engine)
        _apply_outcomes(session, tess, demo.later_outcomes)
        _age(session, demo.age)
        created += 1
    if created:
        stdout.write(f"FlowPilot: {created} demo session(s) for {tess.name}.")


def _apply_outcomes(session: Session, user, outcomes) -> None:
    lane = list(session.tasks.order_by("position", "id"))
    for position, status, outcome in outcomes:
        if position <= len(lane):
            task = lane[position - 1]
            task.session = session
            actions.update_task(task=task, user=user, status=status, outcome=outcome)


def _age(session: Session, age: timedelta) -> None:
    """Move the whole session back in time, keeping the order of what happened in it."""
    Message.objects.filter(session=session).update(created_at=F("created_at") - age)
    Task.objects.filter(session=session).update(
        created_at=F("created_at") - age, updated_at=F("updated_at") - age
    )
    Session.objects.filter(pk=session.pk).update(
        created_at=F("created_at") - age,
        updated_at=F("updated_at") - age,
    )
