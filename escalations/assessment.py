"""The handoff assessment: an AI opinion bounded in time, with the offline engine beneath it.

At escalation the offline engine's assessment is stored at once (it takes milliseconds), so
the handoff screen never waits for anything. After commit a Celery task asks the configured
engine (Claude when a key is set) under a hard bound of ``RF_ASSESSMENT_TIMEOUT`` seconds;
whatever comes back is validated against a schema, and a timeout, an error or an invalid
answer becomes the offline assessment with a note saying why. The result is stored through
``store_assessment`` (a compare-and-set on ``Handoff.assessment_updated_at``) and announced
on the handoff's channel as an ``assessment`` event, on which the screen refetches its card.

``Handoff.assessment_updated_at`` is the row's version stamp: set by every store and by an
accepted "Refresh" request (that is the rate limit). When the assessment was made is
``generated_at`` inside the stored JSON.

Everything an engine reads is untrusted text typed by people; everything it returns is words.
What is written here is the assessment alone (``Handoff.assessment`` and its stamp): nothing
here changes a handoff's state, the session, its messages or its tasks. The two writes the
assessment leads to, "Get AI analysis" (a briefing posted to the chat) and "Open in Tasks
panel" (a suggested step added to the lane), are the handoff manager's
(``escalations.actions``); ``briefing_text`` here only words the briefing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from escalations.channels import handoff_channel
from escalations.models import Handoff, HandoffState
from flowpilot.assistants import (
    BRIEFING_PREFIX,
    Assessment,
    Assistant,
    ChatLine,
    Conversation,
    TriedStep,
    get_assistant,
)
from flowpilot.assistants.offline import OfflineAssistant
from flowpilot.models import Message, Task
from flowpilot.steps import SHELLS as STEP_SHELLS
from flowpilot.steps import clip
from flowpilot.text import has_control_characters, strip_control_characters
from resolutionflow.events import enqueue_task, send_event_on_commit

logger = logging.getLogger(__name__)

# -- the schema ------------------------------------------------------------------------------

MAX_SUMMARY = 4000
MAX_TITLE = 200
MAX_WHY = 1000
MAX_DETAIL = 2000
MAX_COMMAND = 1000
MAX_OUTCOME = 2000
MAX_NOTE = 500
MAX_MODEL = 100
MAX_TRIED = 50
MAX_CAUSES = 5
MAX_NEXT_STEPS = 8
CONFIDENCES = ("low", "medium", "high")
ENGINES = ("claude", "offline")
SHELLS = (*STEP_SHELLS, "")  # "" for a step without a command
TASK_STATUSES = ("todo", "doing", "done", "failed", "skipped")
TOP_KEYS = frozenset(
    {"summary", "tried", "causes", "next_steps", "confidence", "engine", "note", "generated_at"}
)
OPTIONAL_KEYS = frozenset({"model"})

# What the engine may read of a session: the newest messages, the lane (most recent last).
MAX_MESSAGES_READ = 60
MAX_TASKS_READ = 200

# The engine gets RF_ASSESSMENT_TIMEOUT; we wait this much longer for it to give up by itself
# (its own fallback is the offline engine, which takes milliseconds) before we stop waiting.
GRACE_SECONDS = 0.5
# An engine that ignores its timeout keeps its thread; a few such threads at most, after
# which new requests queue, time out and fall back without starting another call.
_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rf-assessment")

# How long after a request a missing AI answer still counts as "on its way".
PENDING_SLACK_SECONDS = 10.0


class InvalidAssessment(ValueError):
    """An assessment that breaks the schema; the message names the first problem."""


def _text(data: dict, key: str, limit: int, where: str, *, required: bool = False) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise InvalidAssessment(f"{where}{key} is not a string")
    if len(value) > limit:
        raise InvalidAssessment(f"{where}{key} is longer than {limit} characters")
    if has_control_characters(value):
        raise InvalidAssessment(f"{where}{key} contains control characters")
    if required and not value.strip():
        raise InvalidAssessment(f"{where}{key} is empty")
    return value


def _items(data: dict, key: str, limit: int) -> list[dict]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise InvalidAssessment(f"{key} is not a list")
    if len(value) > limit:
        raise InvalidAssessment(f"{key} has more than {limit} items")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidAssessment(f"{key}[{index}] is not an object")
    return value


def _choice(data: dict, key: str, choices: tuple[str, ...], where: str = "") -> str:
    value = data.get(key)
    if value not in choices:
        raise InvalidAssessment(f"{where}{key} is not one of {', '.join(map(repr, choices))}")
    return value


def _known_keys(item: dict, allowed: set[str], where: str) -> None:
    unknown = set(item) - allowed
    if unknown:
        raise InvalidAssessment(f"{where}unknown field {sorted(unknown)[0]!r}")


def validate_assessment(data: object) -> dict[str, Any]:
    """The assessment in canonical form, or ``InvalidAssessment`` naming the first problem.

    Checks types, lengths (no empty summary or titles), counts, the confidence, engine and
    shell enums, and a timezone-aware ``generated_at``; control characters are refused
    (PostgreSQL cannot store NUL in JSON, and none belong in display text). Unknown fields
    are refused too: what is stored is exactly what the screen knows how to show.
    """
    if not isinstance(data, dict):
        raise InvalidAssessment("the assessment is not an object")
    _known_keys(data, TOP_KEYS | OPTIONAL_KEYS, "")
    missing = TOP_KEYS - set(data)
    if missing:
        raise InvalidAssessment(f"missing field {sorted(missing)[0]!r}")
    generated_at = data.get("generated_at")
    parsed = parse_datetime(generated_at) if isinstance(generated_at, str) else None
    if parsed is None or timezone.is_naive(parsed):
        raise InvalidAssessment("generated_at is not an ISO 8601 time with a zone")

    tried = []
    for index, item in enumerate(_items(data, "tried", MAX_TRIED)):
        where = f"tried[{index}]."
        _known_keys(item, {"title", "status", "outcome"}, where)
        tried.append(
            {
                "title": _text(item, "title", MAX_TITLE, where, required=True),
                "status": _choice(item, "status", TASK_STATUSES, where),
                "outcome": _text(item, "outcome", MAX_OUTCOME, where),
            }
        )
    causes = []
    for index, item in enumerate(_items(data, "causes", MAX_CAUSES)):
        where = f"causes[{index}]."
        _known_keys(item, {"title", "why"}, where)
        causes.append(
            {
                "title": _text(item, "title", MAX_TITLE, where, required=True),
                "why": _text(item, "why", MAX_WHY, where),
            }
        )
    next_steps = []
    for index, item in enumerate(_items(data, "next_steps", MAX_NEXT_STEPS)):
        where = f"next_steps[{index}]."
        _known_keys(item, {"title", "detail", "command", "shell"}, where)
        next_steps.append(
            {
                "title": _text(item, "title", MAX_TITLE, where, required=True),
                "detail": _text(item, "detail", MAX_DETAIL, where),
                "command": _text(item, "command", MAX_COMMAND, where),
                "shell": _choice({"shell": item.get("shell", "")}, "shell", SHELLS, where),
            }
        )
    clean = {
        "summary": _text(data, "summary", MAX_SUMMARY, "", required=True),
        "tried": tried,
        "causes": causes,
        "next_steps": next_steps,
        "confidence": _choice(data, "confidence", CONFIDENCES),
        "engine": _choice(data, "engine", ENGINES),
        "note": _text(data, "note", MAX_NOTE, ""),
        "generated_at": parsed.isoformat(),
    }
    if "model" in data:
        clean["model"] = _text(data, "model", MAX_MODEL, "")
    return clean


# -- reading a handoff for the engine --------------------------------------------------------


def conversation_for_handoff(handoff: Handoff) -> Conversation:
    """What an engine may read of a handoff's session, in three queries whatever its size.

    The newest MAX_MESSAGES_READ messages and the lane's last MAX_TASKS_READ tasks: engines
    clip further themselves, so older history would only cost time.
    """
    session = handoff.session
    recent = list(
        Message.objects.filter(session_id=session.pk)
        .select_related("author")
        .order_by("-created_at", "-id")[:MAX_MESSAGES_READ]
    )
    recent.reverse()
    tasks = list(
        Task.objects.filter(session_id=session.pk)
        .order_by("-position", "-id")
        .values("title", "status", "outcome", "command", "detail")[:MAX_TASKS_READ]
    )
    tasks.reverse()
    return Conversation(
        problem=session.problem,
        customer=session.customer,
        device=session.device,
        messages=tuple(
            ChatLine(
                role=message.role,
                text=message.body,
                author=message.author.name if message.author_id else "",
            )
            for message in recent
        ),
        tasks=tuple(TriedStep(**task) for task in tasks),
        escalation_reason=handoff.reason,
        urgency=handoff.urgency,
        escalated_by=handoff.escalated_by.name,
    )


# -- making an assessment ---------------------------------------------------------------------


def _engine_label(name: str) -> str:
    return "Claude" if name == "claude" else name.capitalize() or "The AI engine"


def fallback_note(engine_name: str, reason: str) -> str:
    """The visible sentence shown with an offline assessment standing in for the AI's.

    Worded as the Claude engine words its own fallbacks, so the screen reads the same
    whichever layer gave up.
    """
    label = _engine_label(engine_name)
    return f"{label} was unavailable ({reason}); showing the offline assistant's answer."


def _as_stored(assessment: Assessment, *, model: str = "") -> dict[str, Any]:
    """An engine's Assessment as the dict we validate and store (our own lane for "tried")."""
    data = assessment.as_dict()
    # "tried" is our own lane, typed by people or added by an engine: made to fit the schema.
    data["tried"] = [
        {
            "title": clip(strip_control_characters(step["title"]).strip(), MAX_TITLE) or "Untitled",
            "status": step["status"],
            "outcome": clip(strip_control_characters(step["outcome"]).strip(), MAX_OUTCOME),
        }
        for step in data["tried"][-MAX_TRIED:]
    ]
    data["generated_at"] = timezone.now().isoformat()
    if model and assessment.engine != "offline":
        data["model"] = model[:MAX_MODEL]
    return data


def offline_assessment(conversation: Conversation, *, note: str = "") -> dict[str, Any]:
    """The offline engine's assessment, validated; a minimal one if even that fails."""
    try:
        result = OfflineAssistant().assess(conversation)
        # Its lists are ranked: the schema's counts keep the best of them.
        result = dataclasses.replace(
            result,
            causes=result.causes[:MAX_CAUSES],
            next_steps=result.next_steps[:MAX_NEXT_STEPS],
            note=note[:MAX_NOTE] if note else result.note,
        )
        return validate_assessment(_as_stored(result))
    except Exception:
        logger.exception("The offline assessment failed; storing a minimal one")
    problem = " ".join(strip_control_characters(conversation.problem or "").split())
    summary = clip(problem, MAX_SUMMARY) or "No problem described."
    return validate_assessment(
        {
            "summary": summary,
            "tried": [],
            "causes": [],
            "next_steps": [],
            "confidence": "low",
            "engine": "offline",
            "note": (note or "The offline assessment failed; showing the problem only.")[:MAX_NOTE],
            "generated_at": timezone.now().isoformat(),
        }
    )


def assess_within_bound(
    conversation: Conversation,
    *,
    engine: Assistant | None = None,
    bound: float | None = None,
) -> dict[str, Any]:
    """A validated assessment within ``bound`` (+ GRACE_SECONDS) seconds, whatever the engine does.

    The engine is told the bound and runs in a worker thread; if it has not answered when
    the bound and the grace have passed, we stop waiting and use the offline engine. An
    error or an answer that breaks the schema also becomes the offline assessment, with a
    note naming the reason. Never raises.
    """
    engine = engine or get_assistant()
    if isinstance(engine, OfflineAssistant):
        return offline_assessment(conversation)
    bound = float(settings.RF_ASSESSMENT_TIMEOUT if bound is None else bound)
    name = getattr(engine, "name", "") or "AI engine"
    try:
        future = _executor.submit(engine.assess, conversation, timeout=bound)
    except Exception:
        logger.exception("Could not start the %s assessment", name)
        return offline_assessment(conversation, note=fallback_note(name, "unexpected error"))
    try:
        result = future.result(timeout=bound + GRACE_SECONDS)
    except FutureTimeout:
        future.cancel()  # still queued behind stuck calls: never start it
        logger.warning("The %s assessment exceeded %.1f s; using the offline engine", name, bound)
        return offline_assessment(conversation, note=fallback_note(name, "timeout"))
    except Exception as exc:
        logger.warning("The %s assessment failed: %s", name, type(exc).__name__)
        return offline_assessment(conversation, note=fallback_note(name, "unexpected error"))
    try:
        if not isinstance(result, Assessment):
            raise InvalidAssessment("the engine did not return an Assessment")
        return validate_assessment(_as_stored(result, model=getattr(engine, "model", "") or ""))
    except (InvalidAssessment, AttributeError, TypeError) as exc:
        logger.warning("The %s assessment is invalid: %s", name, exc)
        return offline_assessment(conversation, note=fallback_note(name, "invalid answer"))


# -- storing it ------------------------------------------------------------------------------


@transaction.atomic
def store_assessment(
    *,
    handoff_id: Any,
    assessment: dict[str, Any],
    expected_updated_at: datetime | None,
) -> datetime | None:
    """Store ``assessment`` if the handoff's stamp is still ``expected_updated_at``.

    A compare-and-set: an answer computed from an older version (a slow first pass after a
    newer refresh, a task delivered twice) stores nothing. Returns the new stamp, or None
    when nothing was stored. Announces ``assessment`` on the handoff's channel after commit.
    """
    clean = validate_assessment(assessment)
    stamp = timezone.now()
    rows = Handoff.objects.filter(pk=handoff_id)
    if expected_updated_at is None:
        rows = rows.filter(assessment_updated_at__isnull=True)
    else:
        rows = rows.filter(assessment_updated_at=expected_updated_at)
    if not rows.update(assessment=clean, assessment_updated_at=stamp):
        return None
    send_event_on_commit(
        handoff_channel(handoff_id),
        "assessment",
        {"handoff": str(handoff_id), "engine": clean["engine"], "updated_at": stamp.isoformat()},
    )
    return stamp


def ai_engine_configured() -> bool:
    """Whether an engine other than the offline one would answer (an API key is set)."""
    return bool(getattr(settings, "ANTHROPIC_API_KEY", ""))


def start_assessment_on_commit(handoff: Handoff) -> None:
    """Store the offline assessment now; ask the AI engine after the transaction commits.

    Called by the handoff manager inside its transaction, after the Handoff row is written.
    The offline assessment means the screen has a complete answer from the first render; the
    AI one replaces it live when it lands.
    """
    stamp = store_assessment(
        handoff_id=handoff.pk,
        assessment=offline_assessment(conversation_for_handoff(handoff)),
        expected_updated_at=None,
    )
    if stamp is None or not ai_engine_configured():
        return
    handoff_id = str(handoff.pk)
    transaction.on_commit(lambda: _queue_refresh(handoff_id, stamp))


def _queue_refresh(handoff_id: str, stamp: datetime) -> None:
    # A dead broker costs one short timeout and never fails the request: the offline
    # assessment stands, and "Refresh" asks again.
    enqueue_task(refresh_assessment, handoff_id, stamp.isoformat())


@dataclass(frozen=True)
class RefreshRequest:
    accepted: bool
    retry_after: int = 0  # seconds until the next refresh is allowed, when refused


@transaction.atomic
def request_assessment_refresh(*, handoff: Handoff) -> RefreshRequest:
    """Regenerate the assessment, at most once per RF_ASSESSMENT_REFRESH_SECONDS per handoff.

    The rate limit is a conditional update of the handoff's stamp, so two clicks (or two
    engineers) at once start one regeneration between them.
    """
    interval = timedelta(seconds=settings.RF_ASSESSMENT_REFRESH_SECONDS)
    now = timezone.now()
    accepted = (
        Handoff.objects.filter(pk=handoff.pk)
        .filter(
            Q(assessment_updated_at__isnull=True) | Q(assessment_updated_at__lte=now - interval)
        )
        .update(assessment_updated_at=now)
    )
    if not accepted:
        last = (
            Handoff.objects.filter(pk=handoff.pk)
            .values_list("assessment_updated_at", flat=True)
            .first()
        )
        wait = (last + interval - now).total_seconds() if last else 1
        return RefreshRequest(accepted=False, retry_after=max(1, int(wait + 0.999)))
    handoff.assessment_updated_at = now
    handoff_id = str(handoff.pk)
    transaction.on_commit(lambda: _queue_refresh(handoff_id, now))
    return RefreshRequest(accepted=True)


@shared_task(name="escalations.refresh_assessment", acks_late=True)
def refresh_assessment(handoff_id: str, expected_updated_at: str | None = None) -> bool:
    """Assess a handoff (bounded) and store the result if nothing newer was requested since.

    Safe to run twice: the second run finds the stamp moved and stores nothing.
    """
    handoff = (
        Handoff.objects.select_related("session", "escalated_by").filter(pk=handoff_id).first()
    )
    if handoff is None or handoff.state in (HandoffState.RESOLVED, HandoffState.RELEASED):
        return False
    expected = parse_datetime(expected_updated_at) if expected_updated_at else None
    if expected is None:
        expected = handoff.assessment_updated_at
    elif expected != handoff.assessment_updated_at:
        return False  # superseded before we started: skip the engine call too
    data = assess_within_bound(conversation_for_handoff(handoff))
    return (
        store_assessment(handoff_id=handoff.pk, assessment=data, expected_updated_at=expected)
        is not None
    )


# -- showing it -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AssessmentDisplay:
    """A stored (or freshly computed offline) assessment, ready for the templates."""

    data: dict[str, Any]
    generated_at: datetime
    stored: bool
    # The AI answer is expected shortly: the card says so and checks back until it lands.
    ai_pending: bool = False
    refresh_pending: bool = False

    @property
    def summary(self) -> str:
        return self.data["summary"]

    @property
    def causes(self) -> list[dict]:
        return self.data["causes"]

    @property
    def next_steps(self) -> list[dict]:
        return self.data["next_steps"]

    @property
    def confidence(self) -> str:
        return self.data["confidence"]

    @property
    def engine(self) -> str:
        return self.data["engine"]

    @property
    def engine_label(self) -> str:
        if self.engine == "claude":
            model = self.data.get("model")
            return f"Claude ({model})" if model else "Claude"
        return "Offline knowledge base"

    @property
    def note(self) -> str:
        return self.data["note"]

    @property
    def is_fallback(self) -> bool:
        return self.engine == "offline" and bool(self.note)

    @property
    def made_just_now(self) -> bool:
        return (timezone.now() - self.generated_at).total_seconds() < 60

    @property
    def waiting(self) -> bool:
        return self.ai_pending or self.refresh_pending


def assessment_for_display(handoff: Handoff) -> AssessmentDisplay:
    """The handoff's stored assessment, or the offline one computed now if none is usable.

    Never writes: a GET shows what is stored. Costs no query when an assessment is stored;
    three (bounded) queries and a few milliseconds otherwise.
    """
    now = timezone.now()
    stamp = handoff.assessment_updated_at
    data = None
    if handoff.assessment:
        try:
            data = validate_assessment(handoff.assessment)
        except InvalidAssessment as exc:
            logger.warning(
                "Stored assessment of %s is invalid (%s); showing offline", handoff.pk, exc
            )
    if data is None:
        data = offline_assessment(conversation_for_handoff(handoff))
        return AssessmentDisplay(data=data, generated_at=now, stored=False)
    generated_at = parse_datetime(data["generated_at"])
    slack = timedelta(seconds=settings.RF_ASSESSMENT_TIMEOUT + PENDING_SLACK_SECONDS)
    recent = stamp is not None and now - stamp < slack
    live = handoff.state in (HandoffState.OPEN, HandoffState.CLAIMED)
    return AssessmentDisplay(
        data=data,
        generated_at=generated_at,
        stored=True,
        # First pass: only the offline answer so far, an AI engine is set, and it is early.
        ai_pending=live
        and recent
        and ai_engine_configured()
        and data["engine"] == "offline"
        and not data["note"],
        # A refresh was accepted after this answer was made, and it is still early.
        refresh_pending=live and recent and stamp - generated_at > timedelta(seconds=1),
    )


def _new_executor_after_fork() -> None:
    # Celery's prefork children inherit a pool whose threads did not survive the fork.
    global _executor
    _executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rf-assessment")


os.register_at_fork(after_in_child=_new_executor_after_fork)


# -- "Get AI analysis" ----------------------------------------------------------------------

BRIEFING_MAX_CHARS = 8000
BRIEFING_TRIED = 12
BRIEFING_CAUSES = 3


def briefing_text(handoff: Handoff, assessment: AssessmentDisplay) -> str:
    """The message that briefs FlowPilot on a handoff: the escalation package + assessment.

    Built from the package (the session as it was escalated) so the assistant sees what the
    senior saw; the text is the claimer's own message, clipped to the chat's limit.
    """
    package = handoff.escalation_package or {}
    session = handoff.session
    escalated_by = (package.get("escalated_by") or {}).get("name") or handoff.escalated_by.name
    lines = [
        f"{BRIEFING_PREFIX} I have taken over this escalation. Please analyse it and "
        "propose the next steps.",
        "",
        f"Problem: {_one_line(package.get('problem') or session.problem, 600)}",
    ]
    facts = [
        f"{label}: {_one_line(value, 120)}"
        for label, value in (
            ("Customer", package.get("customer", session.customer)),
            ("Device", package.get("device", session.device)),
        )
        if value
    ]
    if facts:
        lines.append(" · ".join(facts))
    lines.append(
        f"Escalated by {_one_line(escalated_by, 80)} "
        f"({handoff.get_urgency_display().lower()} urgency): {_one_line(handoff.reason, 600)}"
    )
    tried = package.get("steps_tried")
    if tried is None:
        tried = assessment.data["tried"]
    if tried:
        lines += ["", "What was tried:"]
        for step in tried[-BRIEFING_TRIED:]:
            outcome = _one_line(step.get("outcome") or "", 200)
            lines.append(
                f"- {_one_line(step.get('title') or '', 120)} ({step.get('status', '?')})"
                + (f": {outcome}" if outcome else "")
            )
    else:
        lines += ["", "Nothing was tried yet."]
    lines += [
        "",
        f"Assessment ({assessment.engine_label}, {assessment.confidence} confidence): "
        f"{_one_line(assessment.summary, 1200)}",
    ]
    if assessment.causes:
        lines.append("Likely causes:")
        for rank, cause in enumerate(assessment.causes[:BRIEFING_CAUSES], start=1):
            lines.append(f"{rank}. {_one_line(cause['title'], 200)}")
    text = "\n".join(lines)
    return text if len(text) <= BRIEFING_MAX_CHARS else text[: BRIEFING_MAX_CHARS - 1] + "…"


def _one_line(text: str, limit: int) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
