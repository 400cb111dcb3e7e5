"""Analytics pages: the metric card, the admin dashboard, the CSV export and the manual
baseline (the JSON endpoint is analytics/api.py). Decorators → validation → metrics or one
action → render."""

import csv

from django.contrib import messages
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from analytics import actions, charts, metrics
from analytics.formatting import duration_short, duration_text, number
from analytics.forms import BaselineForm, InvalidWindow, parse_window
from analytics.queries import baselines_for_account, get_baseline_for_user
from escalations.models import FirstActionKind, TakeoverMode
from resolutionflow.http import invalid, request_data, see_other
from resolutionflow.permissions import admin_required, senior_required

CSV_COLUMNS = [
    "handoff_id",
    "escalated_at",
    "urgency",
    "state",
    "escalated_by",
    "claimed_by",
    "claimed_at",
    "first_action_at",
    "first_action_kind",
    "takeover_mode",
    "released_at",
    "resolved_at",
    "seconds_to_claim",
    "seconds_to_first_action",
]

# Lines above the header, each starting with "#": what the columns mean.
CSV_NOTES = [
    metrics.FIRST_ACTION_DEFINITION,
    "escalated_at is the first escalation: a handoff re-queued by a release keeps it, so "
    "seconds_to_claim (the queue wait) counts from then.",
    "first_action_kind: "
    + "; ".join(f"{kind.value} = {kind.label}" for kind in FirstActionKind)
    + ". takeover_mode: "
    + "; ".join(f"{mode.value} = {mode.label}" for mode in TakeoverMode)
    + ".",
]


@require_GET
@senior_required
def card(request: HttpRequest) -> HttpResponse:
    """The queue page's metric card, loaded and refreshed by htmx (rf:first-action)."""
    card = metrics.metric_card(request.user.account_id, now=timezone.now())
    context = {"card": card, "definition": metrics.FIRST_ACTION_DEFINITION}
    return render(request, "analytics/dashboard.html#card", context)


def _week_label(point: metrics.WeekPoint) -> str:
    return f"{point.week.day} {point.week:%b}"


def _bin_label(bin_: metrics.HistogramBin) -> str:
    """The lower edge of a bin (the histogram draws it there); the open last bin says ≥."""
    if bin_.upper is None:
        return f"≥{duration_short(bin_.lower)}"
    return "0" if bin_.lower == 0 else duration_short(bin_.lower)


def _bin_tooltip(bin_: metrics.HistogramBin) -> str:
    handoffs = "handoff" if bin_.count == 1 else "handoffs"
    if bin_.upper is None:
        span = f"{duration_text(bin_.lower)} or more"
    else:
        span = f"{duration_text(bin_.lower)} to {duration_text(bin_.upper)}"
    return f"{span} after the claim: {bin_.count} {handoffs}"


def _dashboard_charts(
    summary: metrics.Summary, histogram: list[metrics.HistogramBin]
) -> dict[str, str]:
    weekly = summary.weekly
    base = summary.baseline
    trend_points = [
        charts.Point(
            label=_week_label(point),
            value=None
            if point.median_time_to_first_action is None
            else point.median_time_to_first_action / 60,
            tooltip=f"Week of {_week_label(point)}: median "
            f"{duration_text(point.median_time_to_first_action)} from claim to first action "
            f"({point.first_action} handoffs)",
        )
        for point in weekly
    ]
    medians = [p.median_time_to_first_action for p in weekly if p.median_time_to_first_action]
    trend_description = (
        f"Weekly median time from claim to first action, {len(weekly)} weeks: "
        f"from {duration_text(min(medians))} to {duration_text(max(medians))}."
        if medians
        else "No handoff in this window has a first action yet."
    )
    reference_label = ""
    if base.median_minutes is not None:
        reference_label = f"Manual baseline {number(base.median_minutes)} min (n={base.n})"
        trend_description += f" {reference_label}."
    wait_points = [
        charts.Point(
            label=_week_label(point),
            value=None if point.median_time_to_claim is None else point.median_time_to_claim / 60,
            tooltip=f"Week of {_week_label(point)}: median "
            f"{duration_text(point.median_time_to_claim)} waiting in the queue "
            f"({point.claimed} claimed of {point.escalated})",
        )
        for point in weekly
    ]
    total = sum(bin_.count for bin_ in histogram)
    return {
        "trend": charts.line_chart(
            trend_points,
            chart_id="chart-trend",
            title="Median time to first action, by week",
            description=trend_description,
            unit="minutes",
            reference=base.median_minutes,
            reference_label=reference_label,
            empty_message="No first actions in this window yet.",
        ),
        "distribution": charts.histogram(
            [
                charts.Point(label=_bin_label(b), value=b.count, tooltip=_bin_tooltip(b))
                for b in histogram
            ],
            chart_id="chart-distribution",
            title="Time from claim to first action: distribution",
            description=f"{total} handoffs with a first action, counted by how long after the "
            f"claim it came; median {duration_text(summary.time_to_first_action.median)}, "
            f"90th percentile {duration_text(summary.time_to_first_action.p90)}.",
            unit="handoffs",
            empty_message="No first actions in this window yet.",
        ),
        "queue_wait": charts.bar_chart(
            wait_points,
            chart_id="chart-queue-wait",
            title="Queue wait: median time to claim, by week",
            description=f"Weekly median time from escalation to claim; over the window "
            f"median {duration_text(summary.time_to_claim.median)}, "
            f"90th percentile {duration_text(summary.time_to_claim.p90)}.",
            unit="minutes",
            empty_message="No claims in this window yet.",
        ),
    }


@require_GET
@admin_required
def dashboard(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    now = timezone.now()
    account_id = request.user.account_id
    errors: dict[str, list[str]] = {}
    try:
        window = parse_window(request.GET, today=today)
    except InvalidWindow as error:
        errors = error.errors
        window = metrics.Window.last_days(metrics.DEFAULT_WINDOW_DAYS, today=today)
    # The card reads the default window: when that is the one shown, it is computed once.
    memo: dict = {}  # the two windows share their live current week
    card_tallies = metrics.window_tallies(
        account_id, metrics.default_window(now), now=now, memo=memo
    )
    shown = (
        card_tallies
        if window == metrics.default_window(now)
        else metrics.window_tallies(account_id, window, now=now, memo=memo)
    )
    summary = metrics.escalation_summary(account_id, window, now=now, tallies=shown)
    bin_seconds, bins = metrics.histogram_layout(summary.time_to_first_action.p90)
    histogram = metrics.histogram_of(summary.first_actions, bin_seconds=bin_seconds, bins=bins)
    context = {
        "window": window,
        "errors": errors,
        "typed_from": request.GET.get("from", window.start.isoformat()),
        "typed_to": request.GET.get("to", window.end.isoformat()),
        "presets": [
            (days, metrics.Window.last_days(days, today=today)) for days in (7, 30, 90, 365)
        ],
        "summary": summary,
        "card": metrics.metric_card(account_id, now=now, tallies=card_tallies),
        "charts": _dashboard_charts(summary, histogram),
        "baseline_min": metrics.BASELINE_MIN_MEASUREMENTS,
        "definition": metrics.FIRST_ACTION_DEFINITION,
    }
    return render(request, "analytics/dashboard.html", context, status=400 if errors else 200)


def _csv_cell(value) -> str:
    """Text a spreadsheet will not run: a leading = + - @ becomes literal (OWASP CSV injection)."""
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    if text and text[0] in "=+-@\t\r" and not isinstance(value, int | float):
        return "'" + text
    return text


@require_GET
@admin_required
def export_csv(request: HttpRequest) -> HttpResponse:
    """GET /analytics/export.csv?from=&to=: the window's handoffs with their timings."""
    try:
        window = parse_window(request.GET, today=timezone.localdate())
    except InvalidWindow as error:
        return invalid(error.errors)
    rows = (
        metrics.handoffs_in(request.user.account_id, window)
        .annotate(
            claim_seconds=metrics.time_to_claim_expression(),
            first_action_seconds=metrics.time_to_first_action_expression(),
            escalated_by_name=F("escalated_by__username"),
            claimed_by_name=F("claimed_by__username"),
        )
        .order_by("created_at", "id")
        .values_list(
            "id",
            "created_at",
            "urgency",
            "state",
            "escalated_by_name",
            "claimed_by_name",
            "claimed_at",
            "first_action_at",
            "first_action_kind",
            "takeover_mode",
            "released_at",
            "resolved_at",
            "claim_seconds",
            "first_action_seconds",
        )
    )
    filename = f"handoffs-{window.start}-to-{window.end}.csv"
    response = HttpResponse(
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    writer = csv.writer(response)
    for note in CSV_NOTES:  # comment lines, as pandas (comment="#") and R read them
        response.write(f"# {note}\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows.iterator(chunk_size=2000):
        *fields, claim_seconds, first_action_seconds = row
        writer.writerow(
            [_csv_cell(value) for value in fields]
            + [
                "" if claim_seconds is None else f"{claim_seconds:.1f}",
                "" if first_action_seconds is None else f"{first_action_seconds:.1f}",
            ]
        )
    return response


def _baseline_page(request: HttpRequest, form: BaselineForm, *, status: int = 200):
    account_id = request.user.account_id
    return render(
        request,
        "analytics/baseline.html",
        {
            "form": form,
            "timings": baselines_for_account(account_id),
            "baseline": metrics.baseline(account_id),
            "baseline_min": metrics.BASELINE_MIN_MEASUREMENTS,
        },
        status=status,
    )


def _new_baseline_form(request: HttpRequest, data=None) -> BaselineForm:
    today = timezone.localdate()
    return BaselineForm(
        data,
        account_id=request.user.account_id,
        today=today,
        initial={"measured_on": today, "timed_by": request.user.pk},
    )


@require_GET
@admin_required
def baseline_list(request: HttpRequest) -> HttpResponse:
    return _baseline_page(request, _new_baseline_form(request))


@require_POST
@admin_required
def baseline_create(request: HttpRequest) -> HttpResponse:
    form = _new_baseline_form(request, request_data(request))
    if not form.is_valid():
        return _baseline_page(request, form, status=400)
    timing = actions.record_baseline(account=request.user.account, **form.cleaned_data)
    messages.success(request, f"Recorded {number(float(timing.minutes), 2)} minutes.")
    return see_other(request, reverse("analytics:baseline"))


@require_http_methods(["GET", "POST"])
@admin_required
def baseline_edit(request: HttpRequest, pk: int) -> HttpResponse:
    timing = get_baseline_for_user(request.user, pk)
    form = BaselineForm(
        request_data(request) if request.method == "POST" else None,
        account_id=request.user.account_id,
        today=timezone.localdate(),
        initial={
            "minutes": timing.minutes,
            "measured_on": timing.measured_on,
            "timed_by": timing.timed_by_id,
            "note": timing.note,
        },
    )
    if request.method == "POST":
        if form.is_valid():
            actions.update_baseline(baseline=timing, **form.cleaned_data)
            messages.success(request, "Timing updated.")
            return see_other(request, reverse("analytics:baseline"))
        status = 400
    else:
        status = 200
    return render(
        request, "analytics/baseline_edit.html", {"form": form, "timing": timing}, status=status
    )


@require_POST
@admin_required
def baseline_delete(request: HttpRequest, pk: int) -> HttpResponse:
    timing = get_baseline_for_user(request.user, pk)
    actions.delete_baseline(baseline=timing)
    day = timing.measured_on
    messages.success(request, f"Deleted the timing of {day.day} {day:%b %Y}.")
    return see_other(request, reverse("analytics:baseline"))
