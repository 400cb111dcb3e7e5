"""The offline FlowPilot engine: a deterministic troubleshooting knowledge base.

No network, no model, no Django: the knowledge lives in TOML files under
``flowpilot/knowledge/`` (one problem family per file) and this module turns it into
replies and escalation assessments. Same conversation in, same answer out.

A family file looks like this (every key shown is checked by ``load_knowledge``)::

    id = "dns"                       # unique across all files
    title = "Name resolution (DNS)"
    fallback = false                 # exactly one file sets true: the generic triage

    [match.keywords]                 # phrase = weight; plurals match automatically
    "dns" = 5
    "name resolution" = 6
    [match.negative]                 # phrase = weight subtracted from this family
    "printer" = 3

    [[questions]]                    # diagnostic questions, asked in this order
    id = "dns.scope"
    text = "Does it fail for every name or only internal ones?"
    answered_if = ["internal", "every site"]   # phrases that show it was answered

    [[steps]]                        # ordered: the engine proposes the next untried ones
    id = "dns.client-servers"        # stable, unique across all files
    title = "Check which DNS servers the client uses"
    detail = "..."
    command = "ipconfig /all"        # optional
    shell = "cmd"                    # powershell | cmd | bash, required with a command

    [[causes]]                       # most likely first, before any evidence
    id = "dns.wrong-server"
    title = "The client points at the wrong DNS server"
    why = "..."
    checked_by = ["dns.client-servers"]   # step ids; once all were tried, it sinks
    supported_if = ["only internal names"]   # optional: reported facts that point here
    ruled_out_if = ["every site fails"]      # optional: reported facts that point away

Evidence is read from what people reported: the problem, the escalation reason, the
technician's messages and the outcomes recorded on tasks. A cause that fits it rises (and
the steps that check it come first); one it contradicts sinks, and the assessment says why.
"""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from flowpilot.assistants.base import (
    Assessment,
    Conversation,
    LikelyCause,
    ProposedStep,
    Reply,
    TriedStep,
)
from flowpilot.steps import FINISHED, SHELLS

KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge"

VALID_SHELLS = frozenset(SHELLS)
FINISHED_STATUSES = FINISHED
LANE_STATUSES = frozenset({"todo", "doing"})

# Matching weights. The problem statement is what the technician wrote down first, so it
# counts double; the newest user message counts a bit more than older chat, and a
# message that corrects course ("actually it's only on VPN") counts more again, which is
# what lets a later detail move the match to another family.
PROBLEM_WEIGHT = 2.0
MESSAGE_WEIGHT = 1.0
LATEST_MESSAGE_WEIGHT = 1.5
CORRECTION_MULTIPLIER = 2.0
CORRECTION_CUES = (
    "actually",
    "turns out",
    "only when",
    "only on",
    "only happens",
    "only if",
    "correction",
    "its really",
    "it is really",
    "rather",
)

# A family needs MIN_SCORE to be chosen at all; STRONG_SCORE plus a clear lead over
# the runner-up makes it a strong match (which drives the assessment's confidence).
MIN_SCORE = 4.0
STRONG_SCORE = 10.0
STRONG_LEAD = 1.5

STEPS_PER_REPLY = 3
QUESTIONS_FIRST_REPLY = 2
QUESTIONS_LATER_REPLY = 1
TRIAGE_QUESTIONS_FIRST_REPLY = 4
TRIAGE_QUESTIONS_LATER_REPLY = 2
ASSESS_NEXT_STEPS = 5
ASSESS_CAUSES = 5  # the most an assessment lists (the handoff screen's schema allows 5)
ACKNOWLEDGED_FAILURES = 2

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# Anything a Markdown renderer could take for an HTML tag, comment or declaration.
_HTML_LIKE = re.compile(r"<\s*[/!?a-zA-Z]")


# --------------------------------------------------------------------------- text


_SEPARATORS = re.compile(r"[\W_]+")
_APOSTROPHES = str.maketrans("", "", "'\u2019`")


def words(text: str) -> tuple[str, ...]:
    """Casefolded words of ``text`` with punctuation removed ("can't" -> "cant")."""
    return tuple(_SEPARATORS.sub(" ", text.casefold().translate(_APOSTROPHES)).split())


def normalize(text: str) -> str:
    """Casefold, strip punctuation and collapse whitespace: the key for comparing titles."""
    return " ".join(words(text))


def _stem(word: str) -> str:
    # Just enough to let "printers" match "printer"; applied to both phrases and text,
    # so the odd wrong stem ("windows" -> "window") still matches itself.
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _stemmed(text: str) -> tuple[str, ...]:
    return tuple(_stem(word) for word in words(text))


# Evidence is looked for clause by clause, and a phrase right after a negation does not
# count: "not on spamhaus" is no evidence of a blocklist, "No, it works from a hotspot" is.
# Sentence and clause punctuation ends a clause; a period or comma inside "2.1", an IP
# address or "1,000" does not, nor a colon ("PasswordExpired : True" is one statement).
_CLAUSE_BREAKS = re.compile(r"[.!?,;]+(?=\s|$)|[()\[\]\n\"\u201c\u201d]+|\s[-\u2013\u2014]+\s")
NEGATIONS = frozenset(
    {"not", "no", "never", "nor", "neither", "without", "isnt", "arent", "wasnt", "werent"}
    | {"doesnt", "dont", "didnt", "cant", "cannot", "couldnt", "wont", "hasnt", "havent"}
    | {"hadnt"}
)
NEGATION_REACH = 3  # words before a phrase that can negate it


def _clauses(text: str) -> tuple[tuple[str, ...], ...]:
    """The stemmed words of each clause of ``text``."""
    return tuple(words for part in _CLAUSE_BREAKS.split(text) if (words := _stemmed(part)))


class _Statements:
    """Clauses indexed by word, to ask cheaply whether any of them states a phrase."""

    def __init__(self, clauses: Iterable[tuple[str, ...]]) -> None:
        self._at: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for clause in clauses:
            for position, word in enumerate(clause):
                self._at.setdefault(word, []).append((clause, position))

    def state(self, phrase: tuple[str, ...]) -> bool:
        """Whether some clause says ``phrase`` without a negation just before it."""
        for clause, start in self._at.get(phrase[0], ()):
            if clause[start : start + len(phrase)] != phrase:
                continue
            if not NEGATIONS.intersection(clause[max(0, start - NEGATION_REACH) : start]):
                return True
        return False


def _normalize_command(command: str) -> str:
    return " ".join(command.casefold().split())


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")


def _plain(text: str, limit: int = 160) -> str:
    """Untrusted text as one short line that can never be read as an HTML tag."""
    line = " ".join(text.split())
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "\u2026"
    return line.replace("<", "\u2039").replace(">", "\u203a")


def _inline(text: str, limit: int = 100) -> str:
    """Untrusted text made safe to drop into a Markdown sentence (no HTML, no markup)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _plain(text, limit))


# ---------------------------------------------------------------------- knowledge


class KnowledgeError(ValueError):
    """A knowledge file is missing, unreadable or breaks the schema."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answered_if: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    detail: str
    command: str = ""
    shell: str = ""

    def proposed(self) -> ProposedStep:
        """This step in the shape the interface hands out."""
        return ProposedStep(
            title=self.title, detail=self.detail, command=self.command, shell=self.shell
        )


@dataclass(frozen=True)
class Cause:
    id: str
    title: str
    why: str
    checked_by: tuple[str, ...] = ()
    supported_if: tuple[str, ...] = ()
    ruled_out_if: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    id: str
    title: str
    source: str
    questions: tuple[Question, ...]
    steps: tuple[Step, ...]
    causes: tuple[Cause, ...]
    keywords: tuple[tuple[str, float], ...] = ()
    negative: tuple[tuple[str, float], ...] = ()
    fallback: bool = False


@dataclass(frozen=True)
class _TextFacts:
    """What the engine needs from one piece of text, computed once per distinct text."""

    stemmed: str  # " word word " (padded) for phrase containment checks
    scores: tuple[tuple[str, float], ...]
    corrects_course: bool


class Knowledge:
    """Validated families plus the precompiled phrase index used for matching."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.families: tuple[Family, ...] = tuple(families)
        self.by_id: dict[str, Family] = {family.id: family for family in self.families}
        fallbacks = [family for family in self.families if family.fallback]
        if len(fallbacks) != 1:
            raise KnowledgeError("exactly one family must set fallback = true")
        self.fallback: Family = fallbacks[0]
        self.matchable: tuple[Family, ...] = tuple(f for f in self.families if not f.fallback)
        self._order = {family.id: index for index, family in enumerate(self.families)}
        self._phrase_index = self._build_phrase_index()
        self.question_texts: dict[str, str] = {
            question.id: " " + " ".join(_stemmed(question.text)) + " "
            for family in self.families
            for question in family.questions
        }
        self.answer_phrases: dict[str, tuple[str, ...]] = {
            question.id: tuple(
                " " + " ".join(_stemmed(phrase)) + " " for phrase in question.answered_if
            )
            for family in self.families
            for question in family.questions
        }
        # Cause id -> ((phrase, its stemmed words), ...) for it, then against it.
        self.cause_evidence: dict[str, tuple[tuple[tuple[str, tuple[str, ...]], ...], ...]] = {
            cause.id: tuple(
                tuple((phrase, _stemmed(phrase)) for phrase in phrases)
                for phrases in (cause.supported_if, cause.ruled_out_if)
            )
            for family in self.families
            for cause in family.causes
        }
        self.step_titles: dict[str, str] = {
            step.id: normalize(step.title) for family in self.families for step in family.steps
        }
        self.step_commands: dict[str, str] = {
            step.id: _normalize_command(step.command)
            for family in self.families
            for step in family.steps
        }
        # Chat text repeats from reply to reply (the whole history is sent every time),
        # so each distinct text is analysed once per Knowledge.
        self.facts = lru_cache(maxsize=4096)(self._facts)
        self.clauses = lru_cache(maxsize=4096)(_clauses)

    def _build_phrase_index(self) -> dict[str, tuple[tuple[tuple[str, ...], int, str, float], ...]]:
        # First word -> (remaining words, phrase number, family id, weight). Scanning a
        # text is then one dict lookup per word instead of one regex per phrase.
        index: dict[str, list[tuple[tuple[str, ...], int, str, float]]] = {}
        number = 0
        for family in self.matchable:
            weighted = [*family.keywords, *((phrase, -w) for phrase, w in family.negative)]
            for phrase, weight in weighted:
                tokens = _stemmed(phrase)
                index.setdefault(tokens[0], []).append((tokens[1:], number, family.id, weight))
                number += 1
        return {first: tuple(entries) for first, entries in index.items()}

    def _facts(self, text: str) -> _TextFacts:
        tokens = _stemmed(text)
        scores: dict[str, float] = {}
        seen: set[int] = set()
        for position, token in enumerate(tokens):
            for rest, number, family_id, weight in self._phrase_index.get(token, ()):
                if number in seen:
                    continue  # a phrase counts once per text, however often it is repeated
                if rest and tokens[position + 1 : position + 1 + len(rest)] != rest:
                    continue
                seen.add(number)
                scores[family_id] = scores.get(family_id, 0.0) + weight
        padded = " " + " ".join(tokens) + " "
        corrects = any(f" {cue} " in padded for cue in _CORRECTION_CUES_STEMMED)
        return _TextFacts(
            stemmed=padded,
            scores=tuple(sorted(scores.items(), key=lambda item: self._order[item[0]])),
            corrects_course=corrects,
        )

    def rank(self, family_id: str) -> int:
        """Position of a family in load order, the deterministic tie-breaker."""
        return self._order[family_id]


_CORRECTION_CUES_STEMMED = tuple(" ".join(_stemmed(cue)) for cue in CORRECTION_CUES)

_FAMILY_KEYS = {"id", "title", "fallback", "match", "questions", "steps", "causes"}
_MATCH_KEYS = {"keywords", "negative"}
_QUESTION_KEYS = {"id", "text", "answered_if"}
_STEP_KEYS = {"id", "title", "detail", "command", "shell"}
_CAUSE_KEYS = {"id", "title", "why", "checked_by", "supported_if", "ruled_out_if"}


def load_knowledge(directory: Path | str | None = None) -> Knowledge:
    """Read and validate every ``*.toml`` family file in ``directory``.

    Raises ``KnowledgeError`` naming the file (and family) on the first problem found:
    unreadable TOML, missing or unknown fields, duplicate ids, unknown shells, HTML in
    texts, dangling step references, or not exactly one fallback family.
    """
    folder = Path(directory) if directory is not None else KNOWLEDGE_DIR
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        raise KnowledgeError(f"{folder}: no *.toml knowledge files found")

    families: list[Family] = []
    family_files: dict[str, str] = {}
    step_files: dict[str, str] = {}
    for path in paths:
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise KnowledgeError(f"{path.name}: cannot read knowledge file: {error}") from error
        family = _parse_family(data, path.name)
        if family.id in family_files:
            raise KnowledgeError(
                f"{path.name}: family id {family.id!r} is already used in {family_files[family.id]}"
            )
        family_files[family.id] = path.name
        for step in family.steps:
            if step.id in step_files:
                raise KnowledgeError(
                    f"{path.name}: family {family.id!r}: step id {step.id!r} is already "
                    f"used in {step_files[step.id]}"
                )
            step_files[step.id] = path.name
        families.append(family)

    fallbacks = [family.id for family in families if family.fallback]
    if len(fallbacks) != 1:
        raise KnowledgeError(
            f"{folder}: exactly one family must set fallback = true (found {fallbacks or 'none'})"
        )
    return Knowledge(families)


def _parse_family(data: dict[str, Any], source: str) -> Family:
    where = source
    _check_keys(data, _FAMILY_KEYS, where)
    family_id = _required_id(data, where)
    where = f"{source}: family {family_id!r}"
    title = _required_text(data, "title", where)
    fallback = data.get("fallback", False)
    if not isinstance(fallback, bool):
        raise KnowledgeError(f"{where}: 'fallback' must be true or false")

    keywords: tuple[tuple[str, float], ...] = ()
    negative: tuple[tuple[str, float], ...] = ()
    match = data.get("match", {})
    if not isinstance(match, dict):
        raise KnowledgeError(f"{where}: 'match' must be a table")
    _check_keys(match, _MATCH_KEYS, f"{where}: [match]")
    keywords = _weights(match.get("keywords", {}), f"{where}: [match.keywords]")
    negative = _weights(match.get("negative", {}), f"{where}: [match.negative]")
    # Phrases are compared after normalizing and stemming, so "backup" and "backups"
    # would silently count twice; make the author pick one.
    seen_phrases: dict[tuple[str, ...], str] = {}
    for phrase, _ in (*keywords, *negative):
        key = _stemmed(phrase)
        if key in seen_phrases:
            raise KnowledgeError(
                f"{where}: phrases {seen_phrases[key]!r} and {phrase!r} match the same words"
            )
        seen_phrases[key] = phrase
    if not fallback and not keywords:
        raise KnowledgeError(f"{where}: [match.keywords] needs at least one phrase")

    questions = tuple(
        _parse_question(item, f"{where}: question #{number}")
        for number, item in enumerate(_table_list(data, "questions", where), start=1)
    )
    steps = tuple(
        _parse_step(item, f"{where}: step #{number}")
        for number, item in enumerate(_table_list(data, "steps", where), start=1)
    )
    causes = tuple(
        _parse_cause(item, f"{where}: cause #{number}")
        for number, item in enumerate(_table_list(data, "causes", where), start=1)
    )
    for kind, items in (("question", questions), ("step", steps), ("cause", causes)):
        _check_unique([item.id for item in items], f"{where}: {kind}")
    step_ids = {step.id for step in steps}
    for cause in causes:
        unknown = [step_id for step_id in cause.checked_by if step_id not in step_ids]
        if unknown:
            raise KnowledgeError(
                f"{where}: cause {cause.id!r} is checked_by unknown step(s) {unknown}"
            )
    return Family(
        id=family_id,
        title=title,
        source=source,
        questions=questions,
        steps=steps,
        causes=causes,
        keywords=keywords,
        negative=negative,
        fallback=fallback,
    )


def _parse_question(item: dict[str, Any], where: str) -> Question:
    _check_keys(item, _QUESTION_KEYS, where)
    question_id = _required_id(item, where)
    where = f"{where} ({question_id})"
    return Question(
        id=question_id,
        text=_required_text(item, "text", where),
        answered_if=_phrases(item.get("answered_if", []), f"{where}: answered_if"),
    )


def _parse_step(item: dict[str, Any], where: str) -> Step:
    _check_keys(item, _STEP_KEYS, where)
    step_id = _required_id(item, where)
    where = f"{where} ({step_id})"
    command = item.get("command", "")
    shell = item.get("shell", "")
    if not isinstance(command, str) or not isinstance(shell, str):
        raise KnowledgeError(f"{where}: 'command' and 'shell' must be strings")
    command = command.strip()
    if command and shell not in VALID_SHELLS:
        raise KnowledgeError(
            f"{where}: shell {shell!r} is not one of {sorted(VALID_SHELLS)} "
            "(every command needs its shell)"
        )
    if shell and not command:
        raise KnowledgeError(f"{where}: shell {shell!r} given without a command")
    return Step(
        id=step_id,
        title=_required_text(item, "title", where),
        detail=_required_text(item, "detail", where),
        command=command,
        shell=shell,
    )


def _parse_cause(item: dict[str, Any], where: str) -> Cause:
    _check_keys(item, _CAUSE_KEYS, where)
    cause_id = _required_id(item, where)
    where = f"{where} ({cause_id})"
    checked_by = item.get("checked_by", [])
    if not isinstance(checked_by, list) or not all(isinstance(s, str) for s in checked_by):
        raise KnowledgeError(f"{where}: 'checked_by' must be a list of step ids")
    return Cause(
        id=cause_id,
        title=_required_text(item, "title", where),
        why=_required_text(item, "why", where),
        checked_by=tuple(checked_by),
        supported_if=_phrases(item.get("supported_if", []), f"{where}: supported_if"),
        ruled_out_if=_phrases(item.get("ruled_out_if", []), f"{where}: ruled_out_if"),
    )


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise KnowledgeError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def _required_id(table: dict[str, Any], where: str) -> str:
    value = table.get("id")
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        raise KnowledgeError(
            f"{where}: 'id' is required and must be lowercase letters, digits, '.' or '-'"
            f" (got {value!r})"
        )
    return value


def _required_text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeError(f"{where}: '{key}' is required and must be non-empty text")
    if _HTML_LIKE.search(value):
        raise KnowledgeError(f"{where}: '{key}' must not contain HTML ({value[:60]!r})")
    return value.strip()


def _table_list(data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    items = data.get(key)
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise KnowledgeError(f"{where}: needs at least one [[{key}]] entry")
    return items


def _weights(table: Any, where: str) -> tuple[tuple[str, float], ...]:
    if not isinstance(table, dict):
        raise KnowledgeError(f"{where}: must be a table of phrase = weight")
    weights = []
    for phrase, weight in table.items():
        if not words(phrase):
            raise KnowledgeError(f"{where}: phrase {phrase!r} has no words")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise KnowledgeError(f"{where}: weight of {phrase!r} must be a positive number")
        weights.append((phrase, float(weight)))
    return tuple(weights)


def _phrases(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) and words(p) for p in value):
        raise KnowledgeError(f"{where}: must be a list of non-empty phrases")
    return tuple(value)


def _check_unique(ids: list[str], where: str) -> None:
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise KnowledgeError(f"{where} id {item_id!r} is used twice")
        seen.add(item_id)


_default_knowledge: Knowledge | None = None
_default_lock = threading.Lock()


def default_knowledge() -> Knowledge:
    """The bundled knowledge base, loaded and validated once per process."""
    global _default_knowledge
    if _default_knowledge is None:
        with _default_lock:
            if _default_knowledge is None:
                _default_knowledge = load_knowledge()
    return _default_knowledge


# ----------------------------------------------------------------------- matching


@dataclass(frozen=True)
class Classification:
    """Which family a conversation is about, and how sure the match is."""

    family_id: str | None  # None: nothing matched, the generic triage applies
    score: float
    strength: Literal["strong", "weak", "none"]
    scores: tuple[tuple[str, float], ...] = ()  # every family that scored, best first


def classify(conversation: Conversation, knowledge: Knowledge | None = None) -> Classification:
    """Match the conversation (problem first, then user messages) to a problem family."""
    knowledge = knowledge or default_knowledge()
    totals: dict[str, float] = {}

    def add(text: str, weight: float) -> None:
        facts = knowledge.facts(text)
        if facts.corrects_course:
            weight *= CORRECTION_MULTIPLIER
        for family_id, score in facts.scores:
            totals[family_id] = totals.get(family_id, 0.0) + score * weight

    add(conversation.problem, PROBLEM_WEIGHT)
    if conversation.escalation_reason:
        add(conversation.escalation_reason, MESSAGE_WEIGHT)
    user_texts = [line.text for line in conversation.messages if line.role == "user"]
    for position, text in enumerate(user_texts, start=1):
        add(text, LATEST_MESSAGE_WEIGHT if position == len(user_texts) else MESSAGE_WEIGHT)

    ranked = sorted(
        ((family_id, score) for family_id, score in totals.items() if score > 0),
        key=lambda item: (-item[1], knowledge.rank(item[0])),
    )
    if not ranked or ranked[0][1] < MIN_SCORE:
        return Classification(None, ranked[0][1] if ranked else 0.0, "none", tuple(ranked))
    best_id, best = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    strong = best >= STRONG_SCORE and best >= STRONG_LEAD * runner_up
    return Classification(best_id, best, "strong" if strong else "weak", tuple(ranked))


# ------------------------------------------------------------------ session state


def _task_keys(task: TriedStep) -> tuple[str, ...]:
    # A task is a knowledge step if its normalized title or its command matches.
    return tuple(key for key in (normalize(task.title), _normalize_command(task.command)) if key)


class _Lane:
    """The lane's tasks indexed by normalized title and command."""

    def __init__(self, tasks: tuple[TriedStep, ...]) -> None:
        self.tasks = tasks
        self._statuses: dict[str, set[str]] = {}
        for task in tasks:
            for key in _task_keys(task):
                self._statuses.setdefault(key, set()).add(task.status)

    def statuses(self, knowledge: Knowledge, step: Step) -> set[str]:
        """Statuses of every task that is this step (same title, or same command)."""
        found = set(self._statuses.get(knowledge.step_titles[step.id], ()))
        command = knowledge.step_commands[step.id]
        if command:
            found |= self._statuses.get(command, set())
        return found

    def counts(self) -> dict[str, int]:
        """How many tasks are in each status, in a fixed order."""
        counts = dict.fromkeys(("done", "failed", "skipped", "doing", "todo"), 0)
        for task in self.tasks:
            counts[task.status] = counts.get(task.status, 0) + 1
        return counts


@dataclass(frozen=True)
class _RankedCause:
    cause: Cause
    checks: tuple[Step, ...]  # its checking steps done or failed, outcome not pointing here
    support: tuple[str, ...]  # its supported_if phrases found in what people reported
    against: tuple[str, ...]  # its ruled_out_if phrases found there
    confirmed_by: tuple[Step, ...] = ()  # its checks whose outcome states a fact for it

    @property
    def fully_checked(self) -> bool:
        return bool(self.checks) and len(self.checks) == len(self.cause.checked_by)

    @property
    def score(self) -> int:
        # Each fact for it counts 2 (at most 3 of them), each fact against it -3 (at most 2);
        # every check carried out without fixing the problem makes it less likely: -1 while
        # some checks remain, -2 once all were done.
        tier = 2 if self.fully_checked else (1 if self.checks else 0)
        return 2 * min(len(self.support), 3) - 3 * min(len(self.against), 2) - tier


@dataclass(frozen=True)
class _Plan:
    """Everything reply() and assess() derive from one conversation."""

    classification: Classification
    family: Family
    lane: _Lane
    untouched: tuple[Step, ...]  # not in the lane at all: what a reply may propose
    untried: tuple[Step, ...]  # not started or finished: todo ones included
    in_lane: tuple[Step, ...]  # waiting as todo/doing
    causes: tuple[_RankedCause, ...]  # most likely first
    unlikely_steps: frozenset[str] = frozenset()  # check only causes the report contradicts

    def worth_proposing(self, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        """``steps`` without those that only check contradicted causes, unless that is all
        there is (then they are the last resort, and still offered)."""
        plausible = tuple(step for step in steps if step.id not in self.unlikely_steps)
        return plausible or steps

    @property
    def leading_cause_is_clear(self) -> bool:
        """The evidence points at the first cause and at no other as strongly."""
        first = self.causes[0]
        runner_up = self.causes[1].score if len(self.causes) > 1 else None
        return (
            bool(first.support)
            and not first.against
            and (runner_up is None or first.score > runner_up)
        )


def _plan(conversation: Conversation, knowledge: Knowledge) -> _Plan:
    classification = classify(conversation, knowledge)
    family = (
        knowledge.by_id[classification.family_id]
        if classification.family_id
        else knowledge.fallback
    )
    lane = _Lane(conversation.tasks)
    untouched, untried, in_lane, tried_ids = [], [], [], {}
    for step in family.steps:
        statuses = lane.statuses(knowledge, step)
        if not statuses:
            untouched.append(step)
        if not statuses & (FINISHED_STATUSES | {"doing"}):
            untried.append(step)
        if statuses & LANE_STATUSES and not statuses & FINISHED_STATUSES:
            in_lane.append(step)
        if statuses & {"done", "failed"}:
            tried_ids[step.id] = step

    # The problem is still open, so every check carried out (done or failed) without
    # fixing it makes its cause less likely, and what people reported makes a cause more or
    # less likely (``_RankedCause.score``); on a tie the data file's order stands.
    # A check whose recorded outcome states a fact for its cause confirmed it rather than
    # ruling it out ("PasswordExpired True" on the password check).
    reported = _Statements(_reported(conversation, knowledge))
    outcomes = _outcomes_by_step(conversation, knowledge, tried_ids.values())
    ranked = []
    for position, cause in enumerate(family.causes):
        for_it, against_it = knowledge.cause_evidence[cause.id]
        support = tuple(phrase for phrase, words in for_it if reported.state(words))
        against = tuple(phrase for phrase, words in against_it if reported.state(words))
        checks, confirmed_by = [], []
        for step_id in cause.checked_by:
            if step_id not in tried_ids:
                continue
            said = outcomes.get(step_id)
            confirms = said is not None and any(said.state(words) for _, words in for_it)
            (confirmed_by if confirms else checks).append(tried_ids[step_id])
        ranked.append(
            (
                position,
                _RankedCause(cause, tuple(checks), support, against, tuple(confirmed_by)),
            )
        )
    ranked.sort(key=lambda item: (-item[1].score, item[0]))
    causes = tuple(item for _, item in ranked)
    return _Plan(
        classification=classification,
        family=family,
        lane=lane,
        untouched=_by_evidence(untouched, causes),
        untried=_by_evidence(untried, causes),
        unlikely_steps=_unlikely_steps(causes),
        in_lane=tuple(in_lane),
        causes=causes,
    )


def _reported(conversation: Conversation, knowledge: Knowledge) -> list[tuple[str, ...]]:
    """What people said about the problem, as stemmed clauses: the evidence for causes."""
    texts = [
        conversation.problem,
        conversation.escalation_reason,
        *(line.text for line in conversation.messages if line.role == "user"),
        *(task.outcome for task in conversation.tasks),
    ]
    return [clause for text in texts if text for clause in knowledge.clauses(text)]


def _outcomes_by_step(
    conversation: Conversation, knowledge: Knowledge, steps: Iterable[Step]
) -> dict[str, _Statements]:
    """What the outcomes recorded on each tried knowledge step's tasks say."""
    found: dict[str, list[tuple[str, ...]]] = {}
    for step in steps:
        keys = {knowledge.step_titles[step.id], knowledge.step_commands[step.id]} - {""}
        for task in conversation.tasks:
            if task.outcome and task.status in {"done", "failed"} and keys & set(_task_keys(task)):
                found.setdefault(step.id, []).extend(knowledge.clauses(task.outcome))
    return {step_id: _Statements(clauses) for step_id, clauses in found.items()}


def _unlikely_steps(causes: tuple[_RankedCause, ...]) -> frozenset[str]:
    """Ids of the steps that check only causes the report contradicts."""
    possible = {step_id for r in causes if not r.against for step_id in r.cause.checked_by}
    unlikely = {step_id for r in causes if r.against for step_id in r.cause.checked_by}
    return frozenset(unlikely - possible)


def _by_evidence(steps: list[Step], causes: tuple[_RankedCause, ...]) -> tuple[Step, ...]:
    """Steps that check a cause the evidence supports first (most likely cause first),
    steps that check only causes it contradicts last, the rest in the file's order."""
    first: dict[str, int] = {}
    for rank, ranked in enumerate(r for r in causes if r.support and not r.against):
        for step_id in ranked.cause.checked_by:
            first.setdefault(step_id, rank)
    unlikely = _unlikely_steps(causes)

    def key(item: tuple[int, Step]) -> tuple[int, int, int]:
        position, step = item
        if step.id in first:
            return (0, first[step.id], position)
        return (2 if step.id in unlikely else 1, 0, position)

    return tuple(step for _, step in sorted(enumerate(steps), key=key))


def _open_questions(
    conversation: Conversation, knowledge: Knowledge, family: Family
) -> list[Question]:
    """The family's questions that the chat does not already answer."""
    # Outcomes recorded on tasks ("OWA works") answer questions just like chat does.
    user_texts = [conversation.problem, *(task.outcome for task in conversation.tasks)]
    replied_to: list[str] = []
    last_user = max(
        (i for i, line in enumerate(conversation.messages) if line.role == "user"), default=-1
    )
    for index, line in enumerate(conversation.messages):
        if line.role == "user":
            user_texts.append(line.text)
        elif line.role == "assistant" and index < last_user:
            replied_to.append(line.text)
    said = [knowledge.facts(text).stemmed for text in user_texts]
    asked = [knowledge.facts(text).stemmed for text in replied_to]

    open_questions = []
    for question in family.questions:
        phrases = knowledge.answer_phrases[question.id]
        if any(phrase in text for phrase in phrases for text in said):
            continue
        # Asked in an earlier reply and the user has written since: treat it as answered
        # rather than nagging; the technician can always volunteer more.
        if any(knowledge.question_texts[question.id] in text for text in asked):
            continue
        open_questions.append(question)
    return open_questions


def _assistant_history(conversation: Conversation, knowledge: Knowledge) -> list[str]:
    return [
        knowledge.facts(line.text).stemmed
        for line in conversation.messages
        if line.role == "assistant"
    ]


def _mentions(history: list[str], text: str) -> bool:
    needle = " " + " ".join(_stemmed(text)) + " "
    return any(needle in said for said in history)


# ---------------------------------------------------------------------- the engine


class OfflineAssistant:
    """Deterministic troubleshooting from the bundled knowledge base: no network, no model."""

    name = "offline"

    def __init__(self, knowledge: Knowledge | None = None) -> None:
        self._knowledge = knowledge

    @property
    def knowledge(self) -> Knowledge:
        """The knowledge base in use (the bundled one unless another was given)."""
        return self._knowledge or default_knowledge()

    def classify(self, conversation: Conversation) -> Classification:
        """The family match with its score and strength."""
        return classify(conversation, self.knowledge)

    def match(self, conversation: Conversation) -> str | None:
        """The matched family id, or None when the generic triage applies."""
        return self.classify(conversation).family_id

    def reply(self, conversation: Conversation) -> Reply:
        """Questions still open plus the next untried steps, as Markdown and steps."""
        knowledge = self.knowledge
        plan = _plan(conversation, knowledge)
        if plan.classification.family_id and _newcomer(conversation):
            return self._where_it_stands(conversation, plan)
        history = _assistant_history(conversation, knowledge)
        paragraphs: list[str] = []

        intro = _introduction(plan, history)
        if intro:
            paragraphs.append(intro)
        acknowledgement = _acknowledge_failures(conversation, knowledge, plan, history)
        if acknowledgement:
            paragraphs.append(acknowledgement)

        proposals = plan.worth_proposing(plan.untouched)[:STEPS_PER_REPLY]
        if not proposals:
            paragraphs.extend(_out_of_steps(conversation, plan))
            return Reply(text="\n\n".join(paragraphs), engine=self.name)

        top = plan.causes[0].cause
        # Name the lead cause when it is new to the conversation, not every turn.
        if (
            plan.classification.family_id
            and not acknowledgement
            and not _mentions(history, top.title)
        ):
            fits = plan.causes[0].support
            evidence = f" It fits what you reported: {_quoted(fits)}." if fits else ""
            paragraphs.append(f"Most likely cause: **{top.title}**. {top.why}{evidence}")
        if not paragraphs:
            paragraphs.append(f"Continuing with **{plan.family.title}**.")

        first_reply = not history
        if plan.classification.family_id:
            limit = QUESTIONS_FIRST_REPLY if first_reply else QUESTIONS_LATER_REPLY
        else:
            limit = TRIAGE_QUESTIONS_FIRST_REPLY if first_reply else TRIAGE_QUESTIONS_LATER_REPLY
        questions = _open_questions(conversation, knowledge, plan.family)[:limit]
        if questions:
            lead = "To narrow it down:" if plan.classification.family_id else "To scope it:"
            paragraphs.append(lead + "\n\n" + "\n".join(f"- {q.text}" for q in questions))

        listed = "\n".join(
            f"{number}. {step.title}" for number, step in enumerate(proposals, start=1)
        )
        paragraphs.append("Next steps (commands are in the steps):\n\n" + listed)
        return Reply(
            text="\n\n".join(paragraphs),
            steps=tuple(step.proposed() for step in proposals),
            engine=self.name,
        )

    def _where_it_stands(self, conversation: Conversation, plan: _Plan) -> Reply:
        """The whole picture for someone new to the session (a senior who took it over):
        what was tried, the causes as the evidence ranks them, and what to do next."""
        paragraphs = [
            f"**Where this stands** ({plan.family.title}): {_count_phrase(plan.lane.counts())}."
        ]
        lead, *others = plan.causes
        fits = f" It fits what was reported: {_quoted(lead.support)}." if lead.support else ""
        paragraphs.append(f"Most likely cause: **{lead.cause.title}**. {lead.cause.why}{fits}")
        possible = [r.cause.title for r in others if not r.against and not r.fully_checked][:2]
        if possible:
            paragraphs.append("Also possible: " + ", ".join(f"**{t}**" for t in possible) + ".")
        unlikely = [r.cause.title for r in others if r.against][:2]
        if unlikely:
            paragraphs.append(
                "Unlikely given the report: " + ", ".join(f"**{t}**" for t in unlikely) + "."
            )
        proposals = plan.worth_proposing(plan.untouched)[:STEPS_PER_REPLY]
        if proposals:
            listed = "\n".join(f"{n}. {step.title}" for n, step in enumerate(proposals, start=1))
            paragraphs.append("Next steps (commands are in the steps):\n\n" + listed)
        if plan.in_lane:
            waiting = ", ".join(f"*{step.title}*" for step in plan.in_lane)
            paragraphs.append(f"Already in the lane, not done yet: {waiting}.")
        return Reply(
            text="\n\n".join(paragraphs),
            steps=tuple(step.proposed() for step in proposals),
            engine=self.name,
        )

    def assess(self, conversation: Conversation, *, timeout: float | None = None) -> Assessment:
        """A handoff summary: what was tried, ranked causes, next steps, confidence.

        ``timeout`` is accepted for interface compatibility; this engine never waits.
        """
        knowledge = self.knowledge
        plan = _plan(conversation, knowledge)
        tried = tuple(task for task in conversation.tasks if task.status != "todo")

        causes = [
            LikelyCause(title=ranked.cause.title, why=_why(ranked))
            for ranked in plan.causes[:ASSESS_CAUSES]
        ]

        # Sure of the problem family and of the cause: high. Sure of the family only: medium.
        matched = plan.classification.family_id is not None
        if not matched or plan.classification.strength != "strong":
            confidence = "low"
        elif plan.untried and plan.leading_cause_is_clear:
            confidence = "high"
        else:
            confidence = "medium"

        return Assessment(
            summary=_summary(conversation, plan),
            tried=tried,
            causes=tuple(causes),
            next_steps=tuple(
                step.proposed() for step in plan.worth_proposing(plan.untried)[:ASSESS_NEXT_STEPS]
            ),
            confidence=confidence,
            engine=self.name,
            extra={
                "family": plan.classification.family_id,
                "family_title": plan.family.title if matched else "",
                "match": plan.classification.strength,
                "score": round(plan.classification.score, 2),
            },
        )


# ------------------------------------------------------------------ reply pieces


def _quoted(phrases: Iterable[str], limit: int = 3) -> str:
    """Up to ``limit`` phrases in quotes, leaving out any that a longer one contains."""
    phrases = list(dict.fromkeys(phrases))
    distinct = [p for p in phrases if not any(p != q and p.lower() in q.lower() for q in phrases)]
    return ", ".join(f"\u201c{phrase}\u201d" for phrase in distinct[:limit])


def _why(ranked: _RankedCause) -> str:
    """The cause's explanation, with what the evidence and the checks say about it."""
    parts = [ranked.cause.why]
    if ranked.support:
        parts.append(f"Fits what was reported: {_quoted(ranked.support)}.")
    if ranked.against:
        parts.append(f"Less likely: the report says {_quoted(ranked.against)}.")
    if ranked.confirmed_by:
        parts.append(
            f"Its check points here too ({_quoted(s.title for s in ranked.confirmed_by)})."
        )
    if ranked.fully_checked:
        parts.append(
            f"Less likely now: already checked ({_quoted(s.title for s in ranked.checks)})."
        )
    return " ".join(parts)


def _newcomer(conversation: Conversation) -> str:
    """Who wrote the latest message, when that person had not written before while others
    had: someone who just took the session over (a senior after a handoff)."""
    said = [line for line in conversation.messages if line.role == "user"]
    if len(said) < 2 or not said[-1].author:
        return ""
    earlier = {line.author for line in said[:-1] if line.author}
    return said[-1].author if earlier and said[-1].author not in earlier else ""


def _introduction(plan: _Plan, history: list[str]) -> str:
    family = plan.family
    if plan.classification.family_id is None:
        if history:
            return ""
        return (
            "I can't match this to a known problem yet, so let's scope it first and "
            "capture the basics."
        )
    if _mentions(history, family.title):
        return ""  # already introduced in an earlier reply
    if history:
        return f"With that detail, the closest match is now **{family.title}**."
    return f"Closest match in the troubleshooting guide: **{family.title}**."


def _acknowledge_failures(
    conversation: Conversation, knowledge: Knowledge, plan: _Plan, history: list[str]
) -> str:
    """'Since X failed, ...' for the latest failures not acknowledged in an earlier reply."""
    fresh = []
    for task in reversed(conversation.tasks):
        if task.status != "failed" or not words(task.title):
            continue
        if _mentions(history, f"{_plain(task.title, 100)} failed"):
            continue
        fresh.append(task)
        if len(fresh) == ACKNOWLEDGED_FAILURES:
            break
    if not fresh:
        return ""

    def failure(task: TriedStep) -> str:
        outcome = f" (\u201c{_inline(task.outcome, 80)}\u201d)" if task.outcome.strip() else ""
        return f"*{_inline(task.title, 100)}* failed{outcome}"

    clause = "Since " + " and ".join(failure(task) for task in reversed(fresh))
    if not plan.untouched:
        return f"{clause}, I have no new steps to add."
    if not plan.classification.family_id:
        return f"{clause}, let's move on to the next checks."
    # Point at a cause the failed steps were not checking: that is where to look next.
    failed_keys = {key for task in fresh for key in _task_keys(task)}
    failed_ids = {
        step.id
        for step in plan.family.steps
        if {knowledge.step_titles[step.id], knowledge.step_commands[step.id]} & failed_keys
    }
    lead = plan.causes[0]
    if lead.support and not lead.against:
        # What was reported still points at the lead cause, failed check or not (a ping
        # that fails because the printer moved confirms it moved): stay with it.
        fits = _quoted(lead.support)
        return (
            f"{clause}, the evidence still points at **{lead.cause.title}**. "
            f"{lead.cause.why} It fits what you reported: {fits}."
        )
    cause = next(
        (r.cause for r in plan.causes if not failed_ids & set(r.cause.checked_by)),
        lead.cause,
    )
    return f"{clause}, let's move on. Next most likely: **{cause.title}**. {cause.why}"


def _out_of_steps(conversation: Conversation, plan: _Plan) -> list[str]:
    family = plan.family
    name = family.title if plan.classification.family_id else "generic triage"
    if plan.in_lane:
        waiting = ", ".join(f"*{step.title}*" for step in plan.in_lane)
        return [
            f"Every step I have for **{name}** is already in the lane. Finish {waiting} "
            "and record the outcome; if none of them fixes it, escalate."
        ]
    return [
        f"I've run out of steps for **{name}**: every one of them is done, failed or "
        "skipped. I recommend escalating to a senior technician.",
        "**Summary for the handoff**\n\n" + "\n".join(_summary_bullets(conversation, plan)),
    ]


def _summary_bullets(conversation: Conversation, plan: _Plan) -> list[str]:
    bullets = [f"- Problem: {_inline(conversation.problem, 160) or 'not described'}"]
    if conversation.customer:
        bullets.append(f"- Customer: {_inline(conversation.customer, 80)}")
    if conversation.device:
        bullets.append(f"- Device: {_inline(conversation.device, 80)}")
    bullets.append(f"- So far: {_count_phrase(plan.lane.counts())}")
    failed = [task for task in conversation.tasks if task.status == "failed"]
    if failed:
        names = ", ".join(f"*{_inline(task.title, 60)}*" for task in failed[-3:])
        bullets.append(f"- Failed: {names}")
    remaining = [r.cause for r in plan.causes if not r.fully_checked]
    if remaining:
        bullets.append(f"- Most likely remaining cause: **{remaining[0].title}**")
    else:
        bullets.append("- Every likely cause in the playbook has been checked")
    return bullets


def _count_phrase(counts: Mapping[str, int]) -> str:
    tried = counts["done"] + counts["failed"]
    if tried:
        parts = [f"{counts[status]} {status}" for status in ("failed", "done") if counts[status]]
        phrase = f"{tried} step{'s' if tried != 1 else ''} tried ({', '.join(parts)})"
    else:
        phrase = "no steps tried yet"
    if counts["skipped"]:
        phrase += f", {counts['skipped']} skipped"
    return phrase


def _summary(conversation: Conversation, plan: _Plan) -> str:
    problem = _plain(conversation.problem, 200) or "No problem statement."
    sentences = [f"Problem: {problem.rstrip('.')}."]
    if plan.classification.family_id:
        sentences.append(
            f"Offline knowledge base match: {plan.family.title} "
            f"({plan.classification.strength} match)."
        )
    else:
        sentences.append("No known problem family matched; generic triage applies.")
    sentences.append(f"{_count_phrase(plan.lane.counts()).capitalize()}.")
    if not plan.untried:
        sentences.append("Every step in the playbook has been tried.")
    if conversation.escalation_reason.strip():
        who = f" by {_plain(conversation.escalated_by, 60)}" if conversation.escalated_by else ""
        urgency = f" (urgency: {_plain(conversation.urgency, 20)})" if conversation.urgency else ""
        reason = _plain(conversation.escalation_reason, 300).rstrip(".")
        sentences.append(f"Escalated{who}{urgency}: {reason}.")
    return " ".join(sentences)
