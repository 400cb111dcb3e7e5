"""The offline engine's evidence rules, applied to causes another engine (Claude) proposed.

Claude's causes are free text. Each is linked to a cause of the offline reasoning, by its
title (fuzzy, with rapidfuzz) or by the fact its "why" quotes; through that link it
inherits what people reported and recorded about that cause. Then the same rules hold as
for the offline engine:

- a cause without support never stays above one the recorded outcomes confirm (the list
  is re-ordered, with a note saying so);
- an answer that leaves out a cause the recorded outcomes confirm is refused (the caller
  falls back to the offline assessment);
- the strongest fact is words people wrote or an outcome they recorded, found in the
  session (``locate``), with its source and its parts (who wrote it, which step recorded
  it) named by us; never FlowPilot's own text (its replies, the handoff briefing), which
  Claude sees in the transcript and may quote back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowpilot.assistants.base import Cause, Conversation, StrongestFact

if TYPE_CHECKING:
    from flowpilot.assistants.offline.reasoning import Origin

# How alike two cause titles must be (rapidfuzz token_set_ratio, 0-100) to be one cause.
LINK_SCORE = 75.0
# A quote shorter than this many words proves nothing ("yes", "it works").
MIN_QUOTE_WORDS = 2
_FILLER = frozenset(
    {"the", "a", "an", "or", "and", "is", "are", "was", "of", "on", "in", "to", "for", "its"}
    | {"it", "by", "with", "from", "at", "be", "has", "have", "not", "no"}
)

REORDERED = "Causes re-ordered: the one the recorded outcomes confirm comes first."
REFUSED = "answer left out the cause the recorded outcomes confirm"
NOT_QUOTED = "The fact Claude quoted is not in what people reported or recorded; left out."
OWN_TEXT = "The fact Claude quoted is FlowPilot's own text, not evidence; left out."


@dataclass(frozen=True)
class Held:
    """Claude's causes after the evidence rules, the fact to show, and why anything changed."""

    causes: tuple[Cause, ...]
    fact: StrongestFact | None = None
    notes: tuple[str, ...] = ()
    refused: str = ""  # non-empty: the answer breaks the rules and must not be used


def _normal(text: str) -> str:
    from flowpilot.assistants.offline.text import normalize

    return normalize(text)


def _content(text: str) -> str:
    return " ".join(word for word in _normal(text).split() if word not in _FILLER)


def locate(quote: str, conversation: Conversation) -> tuple[str, str, Origin | None]:
    """(the quote, its source, the source in parts) when ``quote`` is people's words or a
    recorded outcome in the session (the most telling place when it is in several:
    ``evidence_texts``' order); ("", "own", None) when it is only FlowPilot's own text;
    ("", "", None) when it is neither. Case, spacing and punctuation do not matter."""
    from flowpilot.assistants.offline.reasoning import evidence_texts, own_texts

    needle = _normal(quote)
    if len(needle.split()) < MIN_QUOTE_WORDS:
        return "", "", None
    padded = f" {needle} "
    for text, source, origin in evidence_texts(conversation):
        if padded in f" {_normal(text)} ":
            return " ".join(quote.split()), source, origin
    if any(padded in f" {_normal(text)} " for text in own_texts(conversation)):
        return "", "own", None
    return "", "", None


def _fact(quote: str, source: str, origin: Origin | None, cause: str) -> StrongestFact | None:
    return StrongestFact.quoted(quote, source, cause, **(origin.as_dict() if origin else {}))


def hold_to_evidence(
    conversation: Conversation, causes: tuple[Cause, ...], claimed: tuple[str, str] = ("", "")
) -> Held:
    """Apply the evidence rules to ``causes`` (most likely first) and the fact ``claimed``
    as (quote, cause title) for the first of them."""
    from rapidfuzz import fuzz

    from flowpilot.assistants.offline import OfflineAssistant

    plan = OfflineAssistant().plan(conversation)
    ranked = plan.causes if plan.matched else ()

    def link(cause: Cause):
        title = _content(cause.title)
        best, best_score = None, 0.0
        for candidate in ranked:
            score = fuzz.token_set_ratio(title, _content(candidate.cause.title))
            if score > best_score:
                best, best_score = candidate, score
        if best is not None and best_score >= LINK_SCORE:
            return best
        why = f" {_normal(cause.why)} "
        for candidate in ranked:
            # Its "why" quotes a fact that supports this offline cause.
            for fact in candidate.support:
                quote = _normal(fact.quote)
                if len(quote.split()) >= MIN_QUOTE_WORDS and f" {quote} " in why:
                    return candidate
        return None

    links = [link(cause) for cause in causes]
    confirmed = [r for r in ranked if r.confirmed]
    if confirmed and not any(r is not None and r.confirmed for r in links):
        return Held(causes, refused=REFUSED)
    order = sorted(
        range(len(causes)),
        key=lambda i: 0 if links[i] is not None and links[i].confirmed else 1,
    )
    notes: list[str] = []
    if order != sorted(order):
        notes.append(REORDERED)
    causes = tuple(causes[i] for i in order)
    links = [links[i] for i in order]
    if not causes:
        return Held(causes, notes=tuple(notes))

    fact = None
    quote, _cause = claimed
    if quote:
        found, source, origin = locate(quote, conversation)
        if found and not notes:  # re-ordered: the quote was for another cause
            fact = _fact(found, source, origin, causes[0].title)
        elif not found:
            notes.append(OWN_TEXT if source == "own" else NOT_QUOTED)
    if fact is None and links[0] is not None and links[0].strongest is not None:
        strongest = links[0].strongest
        fact = _fact(strongest.quote, strongest.source, strongest.origin, causes[0].title)
    return Held(causes, fact, tuple(notes))
