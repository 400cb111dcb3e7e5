"""The assistant interface: plain data in, plain data out.

Engines never touch the database. Callers build a ``Conversation`` from a Session
(``flowpilot.assistants.conversation_for``) and store what comes back through actions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from flowpilot.steps import COMMAND_MAX, DETAIL_MAX, OUTCOME_MAX, TITLE_MAX
from flowpilot.text import has_control_characters, strip_control_characters

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


def _has_words(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


def _as_tuple(value: object) -> object:
    # Stored JSON and Claude's answers carry lists; the engines build tuples.
    return tuple(value) if isinstance(value, list) else value


# The text types every model shares: one definition of "a title", "a summary", "a note".
Title = Annotated[
    str,
    Field(min_length=1, max_length=TITLE_MAX),
    AfterValidator(_no_control_characters),
    AfterValidator(_has_words),
]
Summary = Annotated[
    str,
    Field(min_length=1, max_length=SUMMARY_MAX),
    AfterValidator(_no_control_characters),
    AfterValidator(_has_words),
]
Why = Annotated[str, Field(max_length=WHY_MAX), AfterValidator(_no_control_characters)]
Detail = Annotated[str, Field(max_length=DETAIL_MAX), AfterValidator(_no_control_characters)]
Command = Annotated[str, Field(max_length=COMMAND_MAX), AfterValidator(_no_control_characters)]
Outcome = Annotated[str, Field(max_length=OUTCOME_MAX), AfterValidator(_no_control_characters)]
Note = Annotated[str, Field(max_length=NOTE_MAX), AfterValidator(_no_control_characters)]
Quote = Annotated[
    str,
    Field(min_length=1, max_length=WHY_MAX),
    AfterValidator(_no_control_characters),
    AfterValidator(_has_words),
]
Question = Quote  # one question, as long as a quote may be

# Marks a field FlowPilot fills from its own data (the lane, where a quote was found, the
# cause list), never from an engine's say-so: Claude's tool schemas leave it out.
FILLED_BY_FLOWPILOT = {"filled_by": "flowpilot"}


class Step(_Shape):
    """A troubleshooting step: proposed by either engine, stored in an assessment, asked of
    Claude through its tool schema, and the shared part of every knowledge-file step."""

    title: Title = Field(description="Short imperative title, e.g. 'Flush the DNS cache'.")
    detail: Detail = Field(
        "", description="Why this step, how to do it and what to look for (Markdown)."
    )
    command: Command = Field(
        "", description="One command the technician can run for this step, or empty."
    )
    shell: Shell = Field(
        "", description="The shell the command is for; empty when there is no command."
    )


class Cause(_Shape):
    """A likely cause with the reason (and the facts) behind it; the shared part of every
    knowledge-file cause."""

    title: Title = Field(description="The cause in a few words.")
    why: Why = Field(
        "", description="Why it fits; quote the fact behind it and say where it came from."
    )


# The names the engines have always used.
ProposedStep = Step
LikelyCause = Cause


class TriedEntry(_Shape):
    """A lane task as an assessment records it."""

    title: Title
    status: TaskStatus
    outcome: Outcome = ""

    @classmethod
    def from_task(cls, task: TriedStep) -> TriedEntry:
        """A lane task (typed by people, so anything) made to fit: no control characters,
        clipped, "Untitled" when it has no title."""
        title = " ".join(strip_control_characters(task.title).split())[:TITLE_MAX]
        outcome = strip_control_characters(task.outcome).strip()[:OUTCOME_MAX]
        return cls(title=title or "Untitled", status=task.status, outcome=outcome)


def tried_entries(tasks: Iterable[TriedStep]) -> tuple[TriedEntry, ...]:
    """Every task that left the todo column, the newest TRIED_MAX of them."""
    tried = [task for task in tasks if task.status != "todo"]
    return tuple(TriedEntry.from_task(task) for task in tried[-TRIED_MAX:])


FactKind = Literal["problem", "reason", "message", "outcome"]


class StrongestFact(_Shape):
    """The fact behind the first cause, quoted, with where it came from: always people's
    words or a recorded outcome, never FlowPilot's own text.

    ``source`` words it for a sentence ("Tess Tran's message"); ``kind`` and the fields
    beside it say it in parts, for the screen: who wrote it (a message), or the step whose
    recorded outcome it is and that step's status. FlowPilot fills ``source`` and the parts
    from where it found the quote in the session, never from what an engine says about it.
    Assessments stored before ``kind`` existed have ``source`` only.
    """

    quote: Quote = Field(
        description=(
            "The fact, copied word for word from a technician's message, a task outcome, "
            "the escalation reason or the problem (never from FlowPilot's own text)."
        )
    )
    source: Title = Field(
        description="Where it came from: the problem, a message, an outcome.",
        json_schema_extra=FILLED_BY_FLOWPILOT,
    )
    cause: Title = Field(description="The title of the cause it supports (the first one).")
    kind: FactKind | None = Field(None, json_schema_extra=FILLED_BY_FLOWPILOT)
    # kind "message": who wrote it (left out when unknown).
    author: Title | None = Field(None, json_schema_extra=FILLED_BY_FLOWPILOT)
    # kind "outcome": the task's title and status.
    step: Title | None = Field(None, json_schema_extra=FILLED_BY_FLOWPILOT)
    status: TaskStatus | None = Field(None, json_schema_extra=FILLED_BY_FLOWPILOT)

    @classmethod
    def quoted(
        cls,
        quote: str,
        source: str,
        cause: str,
        *,
        kind: FactKind | None = None,
        author: str = "",
        step: str = "",
        status: TaskStatus | None = None,
    ) -> StrongestFact | None:
        """A fact from untrusted text made to fit (one line, no control characters,
        clipped), or None when nothing is left of the quote. ``kind`` and its parts are
        kept only where they belong: ``author`` for a message, ``step`` and ``status`` for
        an outcome."""

        def line(text: str, limit: int) -> str:
            return " ".join(strip_control_characters(text).split())[:limit]

        quote, source = line(quote, WHY_MAX), line(source, TITLE_MAX) or "the session"
        if not quote:
            return None
        # The cause is named exactly as the cause list has it: the screen matches the two.
        cause = strip_control_characters(cause)[:TITLE_MAX]
        parts: dict = {"kind": kind}
        if kind == "message":
            parts["author"] = line(author, TITLE_MAX) or None
        elif kind == "outcome":
            parts["step"] = line(step, TITLE_MAX) or "Untitled"
            parts["status"] = status
        return cls(quote=quote, source=source, cause=cause if cause.strip() else "Unknown", **parts)


class Unclear(_Shape):
    """The evidence does not single out one cause: what it might be, and what to ask.

    ``options`` are the one or two candidates (causes, or problem families when even the
    kind of problem is unsure; empty when nothing matched), named by FlowPilot from the
    assessment's own list; ``ask`` is the question for the technician who escalated that
    would tell them apart.
    """

    options: tuple[Title, ...] = Field(max_length=2, json_schema_extra=FILLED_BY_FLOWPILOT)
    ask: Question = Field(
        description=(
            "The one question to ask the technician who escalated that would tell the "
            "likely causes (or kinds of problem) apart."
        )
    )

    _tuples = field_validator("options", mode="before")(_as_tuple)


class Assessment(_Shape):
    """An engine's assessment of a session: the one shape both engines return, the stored
    assessment extends and Claude's tool schema is built from."""

    summary: Summary = Field(description="Where the troubleshooting stands, in a few sentences.")
    tried: tuple[TriedEntry, ...] = Field(
        (), max_length=TRIED_MAX, json_schema_extra=FILLED_BY_FLOWPILOT
    )
    causes: tuple[Cause, ...] = Field(
        (), max_length=CAUSES_MAX, description="Likely causes, most likely first."
    )
    next_steps: tuple[Step, ...] = Field(
        (), max_length=NEXT_STEPS_MAX, description="Next steps not tried yet, most useful first."
    )
    confidence: Confidence = "low"
    engine: Literal["claude", "offline"] = Field("offline", json_schema_extra=FILLED_BY_FLOWPILOT)
    note: Note = Field("", json_schema_extra=FILLED_BY_FLOWPILOT)
    fact: StrongestFact | None = Field(
        None, description="The strongest fact behind the first cause, or null when none."
    )
    unclear: Unclear | None = Field(
        None,
        description=(
            "Null when the evidence singles out the first cause; otherwise (two causes or "
            "two kinds of problem fit about as well, or nothing points anywhere yet) what "
            "to ask to tell them apart."
        ),
    )

    _tuples = field_validator("tried", "causes", "next_steps", mode="before")(_as_tuple)

    def as_dict(self) -> dict:
        """A JSON-ready form, stored on the Handoff and validated on the way back."""
        return self.model_dump(mode="json", exclude_none=True)


class StoredAssessment(Assessment):
    """The assessment as stored on a Handoff and shown on the handoff screen: an engine's
    Assessment plus when it was made and by which model. Stored JSON from before the
    models were one still loads: every field it had keeps its name and meaning."""

    # What is stored is complete: the fields an engine may leave at their defaults are
    # required here (the same types and limits).
    tried: tuple[TriedEntry, ...] = Field(max_length=TRIED_MAX)
    causes: tuple[Cause, ...] = Field(max_length=CAUSES_MAX)
    next_steps: tuple[Step, ...] = Field(max_length=NEXT_STEPS_MAX)
    confidence: Confidence
    engine: Literal["claude", "offline"]
    note: Note
    generated_at: str
    model: str | None = Field(None, max_length=MODEL_NAME_MAX)

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


REPLY_TEXT_MAX = 8000


class ReplyDraft(_Shape):
    """What Claude sends for a chat reply (the reply tool's input): text and steps."""

    text: Annotated[str, Field(min_length=1, max_length=REPLY_TEXT_MAX)] = Field(
        description="Your reply to the technician's latest message (Markdown)."
    )
    steps: tuple[Step, ...] = Field(
        (), max_length=NEXT_STEPS_MAX, description="Next steps not tried yet, most useful first."
    )


def tool_schema(model: type[BaseModel]) -> dict:
    """``model``'s JSON schema as a tool input for Claude: nested models inlined, every
    field required (Claude fills each), no titles or defaults, no unknown fields, and no
    field FlowPilot fills itself (``FILLED_BY_FLOWPILOT``: the lane, where a quote was
    found). The limits are the model's, so what Claude may send is what the handoff
    screen may store."""
    schema = model.model_json_schema()
    definitions = schema.get("$defs", {})

    def ours(field: object) -> bool:
        return isinstance(field, dict) and all(
            field.get(key) == value for key, value in FILLED_BY_FLOWPILOT.items()
        )

    def clean(node: object) -> object:
        if isinstance(node, list):
            return [clean(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            # A model's docstring is for developers; its fields carry the descriptions.
            found = definitions[node["$ref"].rsplit("/", 1)[1]]
            return clean({k: v for k, v in found.items() if k != "description"})
        out = {}
        for key, value in node.items():
            if key in {"title", "default", "$defs"}:
                continue
            if key == "properties":
                out[key] = {name: clean(field) for name, field in value.items() if not ours(field)}
            else:
                out[key] = clean(value)
        if "properties" in out:
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        return out

    return clean({"type": "object", "properties": schema["properties"]})


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


class Assistant(Protocol):
    name: str

    def reply(self, conversation: Conversation) -> Reply: ...

    def assess(self, conversation: Conversation, *, timeout: float | None = None) -> Assessment: ...
