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

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from pydantic import ValidationError

from escalations.models import Handoff, HandoffState
from flowpilot.assistants import (
    Assessment,
    Assistant,
    ChatLine,
    Conversation,
    TriedStep,
    get_assistant,
)
from flowpilot.assistants.base import (
    CAUSES_MAX,
    MODEL_NAME_MAX,
    NEXT_STEPS_MAX,
    NOTE_MAX,
    SUMMARY_MAX,
    TRIED_MAX,
    StoredAssessment,
)
from flowpilot.assistants.offline import OfflineAssistant
from flowpilot.models import Message, Task
from flowpilot.steps import OUTCOME_MAX, TITLE_MAX, clip, with_visible_command
from flowpilot.text import strip_control_characters
from resolutionflow.broker import enqueue_task

logger = logging.getLogger(__name__)

# -- the schema ------------------------------------------------------------------------------

# The stored assessment's limits are the model's (flowpilot.assistants.base).
MAX_SUMMARY = SUMMARY_MAX
MAX_TITLE = TITLE_MAX
MAX_OUTCOME = OUTCOME_MAX
MAX_NOTE = NOTE_MAX
MAX_MODEL = MODEL_NAME_MAX
MAX_TRIED = TRIED_MAX
MAX_CAUSES = CAUSES_MAX
MAX_NEXT_STEPS = NEXT_STEPS_MAX

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


def _path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _problem(error: dict) -> str:
    """One pydantic error in the words the screen's log has always used."""
    loc = tuple(error["loc"])
    where = _path(loc)
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return f"missing field {loc[-1]!r}" if len(loc) == 1 else f"{where} is missing"
    if kind == "extra_forbidden":
        parent = _path(loc[:-1])
        return f"{parent + '.' if parent else ''}unknown field {loc[-1]!r}"
    if kind == "string_type":
        return f"{where} is not a string"
    if kind == "string_too_long":
        return f"{where} is longer than {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"{where} is empty"
    if kind == "too_long":
        return f"{where} has more than {ctx.get('max_length')} items"
    if kind == "literal_error":
        return f"{where} is not one of {ctx.get('expected')}"
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        return f"{where} is not an object"
    if kind in {"tuple_type", "list_type"}:
        return f"{where} is not a list"
    if kind == "value_error":
        return f"{where} {str(ctx.get('error') or error['msg']).removeprefix('Value error, ')}"
    return f"{where}: {error['msg']}"


def validate_assessment(data: object) -> dict[str, Any]:
    """The assessment in canonical form, or ``InvalidAssessment`` naming the first problem.

    The schema is ``flowpilot.assistants.StoredAssessment`` (the same Step and Cause models
    both engines produce and Claude's tool schema is built from): types, lengths (no empty
    summary or titles), counts, the confidence, engine and shell enums, a timezone-aware
    ``generated_at``; control characters are refused (PostgreSQL cannot store NUL in JSON,
    and none belong in display text), and so are unknown fields: what is stored is exactly
    what the screen knows how to show.
    """
    if not isinstance(data, dict):
        raise InvalidAssessment("the assessment is not an object")
    try:
        clean = StoredAssessment.model_validate(data)
    except ValidationError as error:
        raise InvalidAssessment(_problem(error.errors()[0])) from None
    return clean.model_dump(mode="json", exclude_none=True)


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
    """An engine's Assessment as the dict we validate and store: the same model, plus when
    it was made and by which model. Validated again on the way in (``validate_assessment``):
    an engine that bypassed the model's validation is still caught."""
    data = assessment.model_dump(mode="json", exclude_none=True)
    data["generated_at"] = timezone.now().isoformat()
    if model and assessment.engine != "offline":
        data["model"] = model[:MAX_MODEL]
    return data


def offline_assessment(conversation: Conversation, *, note: str = "") -> dict[str, Any]:
    """The offline engine's assessment, validated; a minimal one if even that fails."""
    try:
        result = OfflineAssistant().assess(conversation)
        # Its lists are ranked: the schema's counts keep the best of them.
        result = result.model_copy(
            update={
                "causes": result.causes[:MAX_CAUSES],
                "next_steps": result.next_steps[:MAX_NEXT_STEPS],
                "note": note[:MAX_NOTE] if note else result.note,
            }
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
    except (InvalidAssessment, AttributeError, TypeError, ValueError) as exc:
        logger.warning("The %s assessment is invalid: %s", name, exc)
        return offline_assessment(conversation, note=fallback_note(name, "invalid answer"))


# -- storing it ------------------------------------------------------------------------------


def ai_engine_configured() -> bool:
    """Whether an engine other than the offline one would answer (``get_assistant`` decides)."""
    return get_assistant().name != OfflineAssistant.name


def start_assessment_on_commit(handoff: Handoff) -> None:
    """Store the offline assessment now; ask the AI engine after the transaction commits.

    Called by the handoff manager inside its transaction, after the Handoff row is written.
    The offline assessment means the screen has a complete answer from the first render; the
    AI one replaces it live when it lands.
    """
    # The write is the handoff manager's; imported here because it imports this module.
    from escalations.actions import store_assessment

    stamp = store_assessment(
        handoff_id=handoff.pk,
        assessment=offline_assessment(conversation_for_handoff(handoff)),
        expected_updated_at=None,
    )
    if stamp is None or not ai_engine_configured():
        return
    handoff_id = str(handoff.pk)
    transaction.on_commit(lambda: queue_refresh(handoff_id, stamp))


def queue_refresh(handoff_id: str, stamp: datetime) -> None:
    """Ask the worker to reassess (called on commit). A dead broker costs one short timeout
    and never fails the request: the offline assessment stands, and "Refresh" asks again."""
    from escalations.tasks import refresh_assessment

    enqueue_task(refresh_assessment, handoff_id, stamp.isoformat())


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
    def fact(self) -> dict | None:
        """The strongest fact behind the first cause (``StrongestFact``: quote, source,
        cause, and where it came from in parts), when known."""
        return self.data.get("fact")

    @property
    def unclear(self) -> dict | None:
        """What the evidence leaves open ("options", "ask"), when it singles out no cause.

        Both engines say so since "Where it stands"; an assessment stored before then is
        unclear when its confidence is low or it lists no cause (with no question to ask).
        """
        if "unclear" in self.data:
            return self.data["unclear"]
        if self.confidence == "low" or not self.causes:
            return {"options": [cause["title"] for cause in self.causes[:2]], "ask": ""}
        return None

    @property
    def next_step(self) -> dict | None:
        """The one next step "Where it stands" names: the first suggested, ready to copy."""
        return with_visible_command(self.next_steps[0]) if self.next_steps else None

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
