"""Analytics demo data: Ada's stopwatch timings of the old manual handoff at Acme.

Four of the five the comparison needs, on purpose: the demo opens on the honest state
("record 1 more timing"), and recording the fifth in front of the audience is what turns
the in-product number into minutes recovered. Handoffs are seeded by escalations.
"""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from analytics.actions import record_baseline
from analytics.models import BaselineMeasurement

# (days ago, minutes, note): what a manual "tell me what you tried" handoff cost at Acme.
ACME_TIMINGS = [
    (26, "14.50", "Outlook profile corruption: Tess re-explained the steps over Teams"),
    (19, "21.00", "VPN drops on hotel Wi-Fi: senior asked for logs Tess had already read"),
    (12, "11.75", "Printer spooler: quick, the ticket notes were good"),
    (5, "17.25", "BitLocker recovery loop: two calls before the first real step"),
]


def seed(*, users: dict, stdout) -> None:
    """Record Ada's four baseline timings at Acme once (matched by note on later runs)."""
    ada = users["ada"]
    today = timezone.localdate()
    existing = set(
        BaselineMeasurement.objects.filter(account_id=ada.account_id).values_list("note", flat=True)
    )
    created = 0
    for days_ago, minutes, note in ACME_TIMINGS:
        if note in existing:
            continue
        record_baseline(
            account=ada.account,
            minutes=Decimal(minutes),
            measured_on=today - timedelta(days=days_ago),
            timed_by=ada,
            note=note,
        )
        created += 1
    kept = len(ACME_TIMINGS) - created
    stdout.write(
        f"Analytics: {ada.account.name} has the demo's {len(ACME_TIMINGS)} baseline timings "
        f"({created} recorded now, {kept} from an earlier run); minutes recovered appear at 5."
    )
