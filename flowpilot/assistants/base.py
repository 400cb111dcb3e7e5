"""The assistant interface: plain data in, plain data out.

Engines never touch the database. Callers build a ``Conversation`` from a Session
(``flowpilot.assistants.conversation_for``) and store what comes back through actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

# The first words of the message "Get AI analysis" posts for the claimer: FlowPilot's own
# assessment in a person's name, so never evidence (escalations.takeover writes it).
BRIEFING_PREFIX = "Handoff briefing:"

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


@dataclass(frozen=True)
class ProposedStep:
    title: str
    detail: str = ""
    command: str = ""
    shell: Shell = ""


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
class LikelyCause:
    title: str
    why: str = ""


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
        }


class Assistant(Protocol):
    name: str

    def reply(self, conversation: Conversation) -> Reply: ...

    def assess(self, conversation: Conversation, *, timeout: float | None = None) -> Assessment: ...
