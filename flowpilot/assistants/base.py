"""The assistant interface: plain data in, plain data out.

Engines never touch the database. Callers build a ``Conversation`` from a Session
(``flowpilot.assistants.conversation_for``) and store what comes back through actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowpilot.steps import COMMAND_MAX, DETAIL_MAX, OUTCOME_MAX, TITLE_MAX
from flowpilot.text import has_control_characters

# The first words of the message "Get AI analysis" posts for the claimer: FlowPilot's own
# assessment in a person's name, so never evidence (escalations.takeover writes it).
BRIEFING_PREFIX = "Handoff briefing:"

# Limits of a stored assessment (the handoff screen's schema).
SUMMARY_MAX = 4000
WHY_MAX = 1000
NOTE_MAX = 500
MODEL_NAME_MAX = 100
TRIED_MAX = 50
CAUSES_MAX = 5
NEXT_STEPS_MAX = 8

TaskStatus = Literal["todo", "doing", "done", "failed", "skipped"]
Confidence = Literal["low", "medium", "high"]
Shell = Literal["powershell", "cmd", "bash", ""]


@dataclass(frozen=True)
class TriedStep:
    """A task from the lane as the engine sees it."""

    title: str
    status: TaskStatus
    outcome: str = ""
    command: str = ""
    detail: str = ""


@dataclass(frozen=True)
class ChatLine:
    role: Literal["user", "assistant", "system"]
    text: str
    author: str = ""


@dataclass(frozen=True)
class Conversation:
    """Everything an engine may read about one troubleshooting session.

    All text in here is untrusted: it was typed by people (or pasted from customers).
    """

    problem: str
    customer: str = ""
    device: str = ""
    messages: tuple[ChatLine, ...] = ()
    tasks: tuple[TriedStep, ...] = ()
    # Set only when assessing an escalation.
    escalation_reason: str = ""
    urgency: str = ""
    escalated_by: str = ""


class _Shape(BaseModel):
    """Immutable, no unknown fields, no type coercion ("7" is not a title)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _no_control_characters(value: str | None) -> str | None:
    if value is not None and has_control_characters(value):
        raise ValueError("contains control characters")
    return value


class Step(_Shape):
    """A troubleshooting step: proposed by either engine, stored in an assessment, asked of
    Claude through its tool schema, and the shared part of every knowledge-file step."""

    title: str = Field(
        min_length=1,
        max_length=TITLE_MAX,
        description="Short imperative title, e.g. 'Flush the DNS cache'.",
    )
    detail: str = Field(
        "",
        max_length=DETAIL_MAX,
        description="Why this step, how to do it and what to look for (Markdown).",
    )
    command: str = Field(
        "",
        max_length=COMMAND_MAX,
        description="One command the technician can run for this step, or empty.",
    )
    shell: Shell = Field(
        "", description="The shell the command is for; empty when there is no command."
    )

    _checked = field_validator("title", "detail", "command")(_no_control_characters)

    @field_validator("title")
    @classmethod
    def _title_has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty")
        return value


class Cause(_Shape):
    """A likely cause with the reason (and the facts) behind it."""

    title: str = Field(min_length=1, max_length=TITLE_MAX)
    why: str = Field("", max_length=WHY_MAX)

    _checked = field_validator("title", "why")(_no_control_characters)

    @field_validator("title")
    @classmethod
    def _title_has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty")
        return value


# The names the engines have always used.
ProposedStep = Step
LikelyCause = Cause


class TriedEntry(_Shape):
    """A lane task as an assessment records it."""

    title: str = Field(min_length=1, max_length=TITLE_MAX)
    status: TaskStatus
    outcome: str = Field("", max_length=OUTCOME_MAX)

    _checked = field_validator("title", "outcome")(_no_control_characters)


FactKind = Literal["problem", "reason", "message", "outcome"]


class StrongestFact(_Shape):
    """The fact behind the first cause, quoted, with where it came from.

    ``source`` words it for a sentence ("Tess Tran's message"); ``kind`` and the fields
    beside it say it in parts, for the screen: who wrote it (a message), or the step whose
    recorded outcome it is and that step's status. Assessments stored before ``kind``
    existed have ``source`` only.
    """

    quote: str = Field(min_length=1, max_length=WHY_MAX)
    source: str = Field(min_length=1, max_length=TITLE_MAX)
    cause: str = Field(min_length=1, max_length=TITLE_MAX)
    kind: FactKind | None = None
    author: str | None = Field(None, max_length=TITLE_MAX)  # kind "message": who wrote it
    step: str | None = Field(None, max_length=TITLE_MAX)  # kind "outcome": the task's title
    status: TaskStatus | None = None  # kind "outcome": the task's status

    _checked = field_validator("quote", "source", "cause", "author", "step")(_no_control_characters)


class Unclear(_Shape):
    """The evidence does not single out one cause: what it might be, and what to ask.

    ``options`` are the one or two candidates (causes, or problem families when even the
    kind of problem is unsure; empty when nothing matched); ``ask`` is the question for the
    technician who escalated that would tell them apart.
    """

    options: list[str] = Field(max_length=2)
    ask: str = Field(min_length=1, max_length=WHY_MAX)

    _checked = field_validator("ask")(_no_control_characters)

    @field_validator("options")
    @classmethod
    def _options_are_titles(cls, value: list[str]) -> list[str]:
        for option in value:
            if not option.strip() or len(option) > TITLE_MAX or has_control_characters(option):
                raise ValueError("holds an empty, long or unprintable title")
        return value


class StoredAssessment(_Shape):
    """The assessment as stored on a Handoff and shown on the handoff screen: what either
    engine's Assessment becomes, validated field by field."""

    summary: str = Field(min_length=1, max_length=SUMMARY_MAX)
    tried: list[TriedEntry] = Field(max_length=TRIED_MAX)
    causes: list[Cause] = Field(max_length=CAUSES_MAX)
    next_steps: list[Step] = Field(max_length=NEXT_STEPS_MAX)
    confidence: Confidence
    engine: Literal["claude", "offline"]
    note: str = Field(max_length=NOTE_MAX)
    generated_at: str
    model: str | None = Field(None, max_length=MODEL_NAME_MAX)
    fact: StrongestFact | None = None  # the strongest fact behind the first cause
    unclear: Unclear | None = None  # set when the evidence does not single out a cause

    _checked = field_validator("summary", "note")(_no_control_characters)

    @field_validator("summary")
    @classmethod
    def _summary_has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty")
        return value

    @field_validator("generated_at")
    @classmethod
    def _aware_iso_time(cls, value: str) -> str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValueError("is not an ISO 8601 time with a zone")
        return parsed.isoformat()


def tool_schema(model: type[BaseModel]) -> dict:
    """``model``'s JSON schema as a tool input for Claude: every field required (Claude
    fills each), no titles, no unknown fields."""
    schema = model.model_json_schema()
    properties = {}
    for name, field_schema in schema["properties"].items():
        field_schema = {k: v for k, v in field_schema.items() if k not in {"title", "default"}}
        properties[name] = field_schema
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class Reply:
    text: str  # Markdown; rendered safely by the template layer.
    steps: tuple[ProposedStep, ...] = ()
    engine: str = "offline"
    # A visible note, e.g. "Claude was unavailable; this is the offline answer."
    note: str = ""
    # What the reply is doing, for callers and the evaluation: "triage", "ask" (weak
    # match), "two-problems", "diagnose", "confirmed" (evidence found the cause), "closeout"
    # (it works now); the family and lead cause ids behind it (offline engine).
    stage: str = ""
    family: str = ""
    cause: str = ""


@dataclass(frozen=True)
class Assessment:
    summary: str
    tried: tuple[TriedStep, ...] = ()
    causes: tuple[LikelyCause, ...] = ()  # most likely first
    next_steps: tuple[ProposedStep, ...] = ()
    confidence: Confidence = "low"
    engine: str = "offline"
    note: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """A JSON-ready form, stored on the Handoff and validated on the way back."""
        return {
            "summary": self.summary,
            "tried": [
                {"title": t.title, "status": t.status, "outcome": t.outcome} for t in self.tried
            ],
            "causes": [{"title": c.title, "why": c.why} for c in self.causes],
            "next_steps": [
                {"title": s.title, "detail": s.detail, "command": s.command, "shell": s.shell}
                for s in self.next_steps
            ],
            "confidence": self.confidence,
            "engine": self.engine,
            "note": self.note,
            **({"fact": self.extra["fact"]} if self.extra.get("fact") else {}),
            **({"unclear": self.extra["unclear"]} if self.extra.get("unclear") else {}),
        }


class Assistant(Protocol):
    name: str

    def reply(self, conversation: Conversation) -> Reply: ...

    def assess(self, conversation: Conversation, *, timeout: float | None = None) -> Assessment: ...
