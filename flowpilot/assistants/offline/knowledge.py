"""Knowledge files: loading, validation and the precompiled phrase index."""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from flowpilot.assistants.base import Cause as CauseShape
from flowpilot.assistants.base import Step as StepShape
from flowpilot.assistants.offline.text import (
    FOREIGN_WORDS,
    NEGATION_REACH,
    NEGATIONS,
    POSITIVE_STATES,
    SUCCESS_VERBS,
    Speller,
    _clauses,
    _normalize_command,
    _stemmed,
    normalize,
    phrase_end,
    states_fine,
    words,
)
from flowpilot.assistants.offline.text import error_codes as _codes_in
from flowpilot.steps import SHELLS

KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent.parent / "knowledge"

VALID_SHELLS = frozenset(SHELLS)
VALID_KINDS = frozenset({"check", "fix"})
VALID_OS = frozenset({"windows", "macos", "linux", "unix", "any"})
ERROR_CODES_FILE = "error-codes.toml"
# A phrase of this weight is specific enough to claim a family on its own ("nslookup",
# "reallocated sectors"); lighter ones ("share", "slow") need a second, different signal.
SPECIFIC_WEIGHT = 5.0
# Words that negate a topic when matching ("no VPN involved", "not the printer"); the
# modal negations ("can't print") describe the problem itself and do not.
MATCH_NEGATIONS = frozenset({"no", "not", "without", "neither", "nor", "nothing"})
_CONTRASTS = frozenset({"but", "however", "yet", "though", "although", "except"})
# "will not install", "does not print": a modal before "not" makes it the problem itself,
# like "can't print"; "not the printer", "no VPN" name a topic that is not the problem.
_MODALS = frozenset(
    {"will", "would", "does", "do", "did", "can", "could", "should", "must", "may", "might"}
)


def _negates_topic(before: tuple[str, ...]) -> bool:
    for index, word in enumerate(before):
        if word in MATCH_NEGATIONS and not (
            word == "not" and index > 0 and before[index - 1] in _MODALS
        ):
            return True
    return False


# Commands that change or delete something: each needs a warning in its step.
DESTRUCTIVE = re.compile(
    r"Remove-|Reset-|Clear-|Set-ADAccountPassword|Restart-Computer|Stop-Service|Disable-"
    r"|/delete\b|\bdel\s|\brd\s+/s|\brm\s+-|\bformat\s|diskpart|netsh\s+\w+(?:\s+\w+)?\s+reset"
    r"|Revoke-|Suspend-BitLocker|manage-bde\s+-(?:off|protectors\s+-delete)|\bfsck\b|tmutil\s+delete"
    r"|security\s+delete|Rename-Item|rename\s",
    re.IGNORECASE,
)
# Admin-side commands (run from the technician's or a server's console, whatever the
# user's device): never filtered by the device's operating system.
_ADMIN_SIDE = re.compile(
    r"\b(?:Get|Set|Unlock|Search|Enable|Disable|Add|Remove|New)-(?:AD|Mg|EXO|Mailbox|Message"
    r"|Quarantine|InboxRule|Dns Server|DnsServer|Dhcp|VBR|Recipient|CASMailbox|Transport"
    r"|RetentionPolicy|GP)|Connect-(?:ExchangeOnline|MgGraph)|\bdcdiag\b|\brepadmin\b"
    r"|-ComputerName\b|Invoke-Command",
    re.IGNORECASE,
)
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

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# Anything a Markdown renderer could take for an HTML tag, comment or declaration.
_HTML_LIKE = re.compile(r"<\s*[/!?a-zA-Z]")

# ---------------------------------------------------------------------- knowledge


class KnowledgeError(ValueError):
    """A knowledge file is missing, unreadable or breaks the schema."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answered_if: tuple[str, ...] = ()


class Step(StepShape):
    """A knowledge-file step: the shared Step model (title, detail, command, shell, with
    its limits) plus what the reasoning needs to know about it."""

    id: str
    kind: Literal["check", "fix"] = "check"
    os: Literal["windows", "macos", "linux", "unix", "any"] = "any"  # where the command runs
    warning: str = ""
    urgent: bool = False  # a fix done as soon as its cause is plausible (incident steps)
    # A check whose result people can report in their own words ("fine in safe mode"):
    # said (not negated), the check counts as carried out and is not proposed again.
    done_if: tuple[str, ...] = ()

    def proposed(self, values: dict[str, str] | None = None) -> StepShape:
        """This step in the shape the interface hands out, placeholders filled from
        ``values`` (or shown as ``<user>``), its warning first in the detail."""
        from flowpilot.assistants.offline.text import fill_placeholders

        detail = f"Warning: {self.warning} {self.detail}" if self.warning else self.detail
        return StepShape(
            title=self.title,
            detail=detail,
            command=fill_placeholders(self.command, values or {}),
            shell=self.shell,
        )

    def runs_on(self, device_os: str) -> bool:
        """Whether this step's command fits a device running ``device_os`` ("" = unknown)."""
        if not self.command or self.os == "any" or not device_os:
            return True
        if device_os == "mobile":
            return False  # nothing is typed on the phone: only admin-side commands fit
        if self.os == "unix":
            return device_os in {"macos", "linux"}
        return self.os == device_os


class Cause(CauseShape):
    """A knowledge-file cause: the shared Cause model (title, why) plus its evidence."""

    id: str
    checked_by: tuple[str, ...] = ()
    supported_if: tuple[str, ...] = ()
    ruled_out_if: tuple[str, ...] = ()
    fixed_by: tuple[str, ...] = ()


def _shaped(model: type, values: dict[str, Any], where: str):
    """``model`` built from ``values``, or a KnowledgeError naming the field and the problem."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise KnowledgeError(f"{where}: '{field}': {message}") from None


@dataclass(frozen=True)
class ErrorCode:
    """A quoted error code: what it means and the family it belongs to."""

    code: str
    family: str
    meaning: str
    cause: str = ""  # a cause id of that family the code points at, if any


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
    requests: bool = False  # handles service requests ("needs a laptop"), not only faults


@dataclass(frozen=True)
class _TextFacts:
    """What the engine needs from one piece of text, computed once per distinct text."""

    stemmed: str  # " word word " (padded) for phrase containment checks
    scores: tuple[tuple[str, float], ...]
    corrects_course: bool
    # family id -> (distinct phrases matched, whether one of them is specific)
    signals: tuple[tuple[str, int, bool], ...] = ()
    # family id -> position of the first word a phrase of it matched (for "two problems")
    first_clause: tuple[tuple[str, int], ...] = ()


class Knowledge:
    """Validated families plus the precompiled phrase index used for matching."""

    def __init__(self, families: Iterable[Family], error_codes: Iterable[ErrorCode] = ()) -> None:
        self.families: tuple[Family, ...] = tuple(families)
        self.by_id: dict[str, Family] = {family.id: family for family in self.families}
        fallbacks = [family for family in self.families if family.fallback]
        if len(fallbacks) != 1:
            raise KnowledgeError("exactly one family must set fallback = true")
        self.fallback: Family = fallbacks[0]
        self.matchable: tuple[Family, ...] = tuple(f for f in self.families if not f.fallback)
        self.error_codes: dict[str, ErrorCode] = {code.code: code for code in error_codes}
        self._order = {family.id: index for index, family in enumerate(self.families)}
        self._phrase_index = self._build_phrase_index()
        # Typos are corrected towards every word the knowledge matches on: family phrases
        # and the facts for and against causes.
        self.speller = Speller(
            word
            for family in self.matchable
            for phrase in (
                *(phrase for phrase, _ in family.keywords),
                *(p for cause in family.causes for p in (*cause.supported_if, *cause.ruled_out_if)),
            )
            for word in _stemmed(phrase)
        )
        self.steps: dict[str, Step] = {
            step.id: step for family in self.families for step in family.steps
        }
        self.causes: dict[str, Cause] = {
            cause.id: cause for family in self.families for cause in family.causes
        }
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
        # Step id -> the stemmed phrases that report it carried out (``done_if``).
        self.done_phrases: dict[str, tuple[tuple[str, ...], ...]] = {
            step.id: tuple(_stemmed(phrase) for phrase in step.done_if)
            for family in self.families
            for step in family.steps
            if step.done_if
        }
        # First word of a done_if phrase -> (remaining words, step id).
        done_index: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for step_id, phrases in self.done_phrases.items():
            for tokens in phrases:
                done_index.setdefault(tokens[0], []).append((tokens[1:], step_id))
        self.done_index = {word: tuple(entries) for word, entries in done_index.items()}
        self.step_commands: dict[str, str] = {
            step.id: _normalize_command(step.command)
            for family in self.families
            for step in family.steps
        }
        # First word of a cause phrase -> (remaining words, cause id, for it?).
        evidence: dict[str, list[tuple[tuple[str, ...], str, bool]]] = {}
        for cause_id, (for_it, against_it) in self.cause_evidence.items():
            for is_for, phrases in ((True, for_it), (False, against_it)):
                for _, tokens in phrases:
                    evidence.setdefault(tokens[0], []).append((tokens[1:], cause_id, is_for))
        self.evidence_index = {word: tuple(entries) for word, entries in evidence.items()}
        # Chat text repeats from reply to reply (the whole history is sent every time),
        # so each distinct text is analysed once per Knowledge.
        self.facts = lru_cache(maxsize=4096)(self._facts)
        self.statements = lru_cache(maxsize=4096)(_statement_parts)
        self.clause_evidence = lru_cache(maxsize=8192)(self._clause_evidence)
        self.clauses = lru_cache(maxsize=4096)(_clauses)
        self._codes_cache: dict[str, tuple[ErrorCode, ...]] = {}

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

    def _matchable_words(self, clause: tuple[str, ...]) -> tuple[str, ...]:
        # Common non-English words become the English ones; typos the nearest known word.
        return tuple(self.speller.correct(FOREIGN_WORDS.get(word, word)) for word in clause)

    def _facts(self, text: str) -> _TextFacts:
        scores: dict[str, float] = {}
        phrases: dict[str, set[int]] = {}
        specific: set[str] = set()
        first_clause: dict[str, int] = {}
        seen: set[int] = set()
        all_tokens: list[str] = []
        clauses = _clauses(text)
        for clause_number, raw in enumerate(clauses):
            clause = self._matchable_words(raw)
            # "The VPN connects fine, but internal sites fail": fine, yet still the topic.
            contrasted = clause_number + 1 < len(clauses) and clauses[clause_number + 1][0] in (
                _CONTRASTS
            )
            all_tokens.extend(clause)
            for position, token in enumerate(clause):
                for rest, number, family_id, weight in self._phrase_index.get(token, ()):
                    if number in seen:
                        continue  # a phrase counts once per text, however often repeated
                    end = phrase_end(clause, position, rest) if rest else position + 1
                    if end < 0:
                        continue
                    if weight > 0:
                        # "no VPN involved", "Outlook and everything else OK": named, but
                        # not as the problem.
                        before = clause[max(0, position - NEGATION_REACH + 1) : position]
                        if _negates_topic(before) or (
                            states_fine(clause, end)
                            and not contrasted
                            and not _CONTRASTS.intersection(clause[end:])
                        ):
                            continue
                        phrases.setdefault(family_id, set()).add(number)
                        if weight >= SPECIFIC_WEIGHT:
                            specific.add(family_id)
                        first_clause.setdefault(family_id, len(all_tokens) - len(clause) + position)
                    seen.add(number)
                    scores[family_id] = scores.get(family_id, 0.0) + weight
        for code in _codes_in(text):
            known = self.error_codes.get(code)
            if known and known.family in self.by_id and not self.by_id[known.family].fallback:
                scores[known.family] = scores.get(known.family, 0.0) + ERROR_CODE_WEIGHT
                specific.add(known.family)
                phrases.setdefault(known.family, set()).add(-1)
                first_clause.setdefault(known.family, 0)
        padded = " " + " ".join(all_tokens) + " "
        corrects = any(f" {cue} " in padded for cue in _CORRECTION_CUES_STEMMED)
        return _TextFacts(
            stemmed=padded,
            scores=tuple(sorted(scores.items(), key=lambda item: self._order[item[0]])),
            corrects_course=corrects,
            signals=tuple(
                (family_id, len(numbers), family_id in specific)
                for family_id, numbers in sorted(phrases.items())
            ),
            first_clause=tuple(sorted(first_clause.items())),
        )

    def _clause_evidence(self, clause: tuple[str, ...]) -> tuple[tuple[str, bool, int, str], ...]:
        """(cause id, for it?, phrase length, "yes" or "no") for every cause phrase the
        clause states ("yes") or denies or calls fine ("no"); typos and common non-English
        words are read as the knowledge's words first."""
        clause = self._matchable_words(clause)
        found = []
        for start, word in enumerate(clause):
            for rest, cause_id, for_it in self.evidence_index.get(word, ()):
                end = phrase_end(clause, start, rest, loose=True) if rest else start + 1
                if end < 0:
                    continue
                found.append(
                    (cause_id, for_it, 1 + len(rest), _reading(clause, start, end - start))
                )
        return tuple(found)

    def codes_in(self, text: str) -> tuple[ErrorCode, ...]:
        """The known error codes quoted in ``text``."""
        if not text:
            return ()
        found = self._codes_cache.get(text)
        if found is None:
            found = tuple(self.error_codes[c] for c in _codes_in(text) if c in self.error_codes)
            if len(self._codes_cache) < 8192:
                self._codes_cache[text] = found
        return found

    def rank(self, family_id: str) -> int:
        """Position of a family in load order, the deterministic tie-breaker."""
        return self._order[family_id]


_STATEMENT_SPLIT = re.compile(r"(?<=[.!?;,])\s+|[()\[\]\n\"\u201c\u201d]+|\s[-\u2013\u2014]+\s")


def _statement_parts(text: str) -> tuple[tuple[tuple[str, ...], str], ...]:
    """The clauses of ``text`` as (stemmed words, the clause as written)."""
    parts = []
    for part in _STATEMENT_SPLIT.split(text or ""):
        if part and (stemmed := _stemmed(part)):
            parts.append((stemmed, part.strip().rstrip(",;:")))
    return tuple(parts)


def _reading(clause: tuple[str, ...], start: int, size: int) -> str:
    """Whether the clause states the phrase at ``start`` ("yes") or says it is not so or
    fine ("no")."""
    if NEGATIONS.intersection(clause[max(0, start - NEGATION_REACH) : start]):
        return "no"
    end = start + size
    if (POSITIVE_STATES | SUCCESS_VERBS).intersection(clause[start:end]):
        return "yes"  # the fact is itself that something works: "fine" after it agrees
    if states_fine(clause, end) and "but" not in clause[end:]:
        return "no"
    return "yes"


_CORRECTION_CUES_STEMMED = tuple(" ".join(_stemmed(cue)) for cue in CORRECTION_CUES)

_FAMILY_KEYS = {"id", "title", "fallback", "requests", "match", "questions", "steps", "causes"}
_MATCH_KEYS = {"keywords", "negative"}
_QUESTION_KEYS = {"id", "text", "answered_if"}
_STEP_KEYS = {
    "id",
    "title",
    "detail",
    "command",
    "shell",
    "kind",
    "os",
    "warning",
    "urgent",
    "done_if",
}
_CAUSE_KEYS = {"id", "title", "why", "checked_by", "fixed_by", "supported_if", "ruled_out_if"}
_CODE_KEYS = {"code", "family", "meaning", "cause"}
ERROR_CODE_WEIGHT = 8.0  # a quoted error code is a specific signal for its family


def load_knowledge(directory: Path | str | None = None) -> Knowledge:
    """Read and validate every ``*.toml`` family file in ``directory``.

    Raises ``KnowledgeError`` naming the file (and family) on the first problem found:
    unreadable TOML, missing or unknown fields, duplicate ids, unknown shells, HTML in
    texts, dangling step references, or not exactly one fallback family.
    """
    folder = Path(directory) if directory is not None else KNOWLEDGE_DIR
    paths = sorted(p for p in folder.glob("*.toml") if p.name != ERROR_CODES_FILE)
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
    codes = _load_error_codes(folder / ERROR_CODES_FILE, {f.id: f for f in families})
    return Knowledge(families, codes)


def _load_error_codes(path: Path, families: dict[str, Family]) -> tuple[ErrorCode, ...]:
    """``error-codes.toml``: [[codes]] code, family, meaning, cause (optional)."""
    if not path.exists():
        return ()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise KnowledgeError(f"{path.name}: cannot read knowledge file: {error}") from error
    _check_keys(data, {"codes"}, path.name)
    found: dict[str, ErrorCode] = {}
    for number, item in enumerate(_table_list(data, "codes", path.name), start=1):
        where = f"{path.name}: code #{number}"
        _check_keys(item, _CODE_KEYS, where)
        code = _required_text(item, "code", where)
        where = f"{where} ({code})"
        family_id = _required_text(item, "family", where)
        if family_id not in families:
            raise KnowledgeError(f"{where}: 'family' names unknown family {family_id!r}")
        cause = item.get("cause", "")
        if cause and cause not in {c.id for c in families[family_id].causes}:
            raise KnowledgeError(f"{where}: 'cause' {cause!r} is not a cause of {family_id!r}")
        normal = _codes_in(code)
        if normal != (code,):
            raise KnowledgeError(f"{where}: 'code' must be written as {normal or 'a known form'}")
        if code in found:
            raise KnowledgeError(f"{where}: code {code!r} is listed twice")
        found[code] = ErrorCode(
            code=code,
            family=family_id,
            meaning=_required_text(item, "meaning", where),
            cause=cause,
        )
    return tuple(found.values())


def _parse_family(data: dict[str, Any], source: str) -> Family:
    where = source
    _check_keys(data, _FAMILY_KEYS, where)
    family_id = _required_id(data, where)
    where = f"{source}: family {family_id!r}"
    title = _required_text(data, "title", where)
    fallback = data.get("fallback", False)
    if not isinstance(fallback, bool):
        raise KnowledgeError(f"{where}: 'fallback' must be true or false")
    requests = data.get("requests", False)
    if not isinstance(requests, bool):
        raise KnowledgeError(f"{where}: 'requests' must be true or false")

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
        for field in ("checked_by", "fixed_by"):
            unknown = [step_id for step_id in getattr(cause, field) if step_id not in step_ids]
            if unknown:
                raise KnowledgeError(
                    f"{where}: cause {cause.id!r}: '{field}' names unknown step(s) {unknown}"
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
        requests=requests,
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
    kind = item.get("kind", "check")
    if kind not in VALID_KINDS:
        raise KnowledgeError(f"{where}: 'kind' {kind!r} is not one of {sorted(VALID_KINDS)}")
    os_name = item.get("os", "")
    if os_name and os_name not in VALID_OS:
        raise KnowledgeError(f"{where}: 'os' {os_name!r} is not one of {sorted(VALID_OS)}")
    urgent = item.get("urgent", False)
    if not isinstance(urgent, bool) or (urgent and kind != "fix"):
        raise KnowledgeError(f"{where}: 'urgent' must be true or false, and only on a fix")
    done_if = _phrases(item.get("done_if", []), f"{where}: done_if")
    if done_if and kind != "check":
        raise KnowledgeError(f"{where}: 'done_if' is only for checks")
    warning = item.get("warning", "")
    if not isinstance(warning, str) or _HTML_LIKE.search(warning):
        raise KnowledgeError(f"{where}: 'warning' must be text without HTML")
    if command and DESTRUCTIVE.search(command) and not warning.strip():
        raise KnowledgeError(
            f"{where}: 'warning' is required: the command changes or deletes something"
        )
    # The Step model both engines, the stored assessment and Claude's tool schema use
    # checks what every step shares (lengths, control characters, the shell).
    step = _shaped(
        Step,
        {
            "id": step_id,
            "title": _required_text(item, "title", where),
            "detail": _required_text(item, "detail", where),
            "command": command,
            "shell": shell,
            "kind": kind,
            "os": os_name or _guess_os(command, shell),
            "warning": warning.strip(),
            "urgent": urgent,
            "done_if": done_if,
        },
        where,
    )
    # What a reply hands out (the warning goes in front of the detail) must fit it too.
    _shaped(StepShape, step.proposed().model_dump(), where)
    return step


_LINUX_ONLY = re.compile(
    r"\b(?:journalctl|systemctl|apt|apt-get|yum|dnf|zypper|logrotate|lsblk|findmnt|nmcli"
    r"|timedatectl|update-ca-certificates|getenforce|restorecon)\b|\bip (?:a|addr|route|link)\b"
    r"|/var/log/(?:syslog|messages|auth)",
)
_MACOS_ONLY = re.compile(
    r"\b(?:scutil|dscacheutil|networksetup|softwareupdate|diskutil|tmutil|pmset"
    r"|system_profiler|launchctl|sysadminctl|fdesetup|tccutil|osascript|dscl|profiles)\b"
    r"|\bsecurity (?:find|delete|add|list|unlock)|~/Library/",
)


def _guess_os(command: str, shell: str) -> str:
    """Where a command runs when the file does not say: admin-side cmdlets anywhere,
    PowerShell and cmd on Windows; bash on Linux or macOS when it uses a tool only one
    of them has (journalctl, scutil), else on either."""
    if not command or _ADMIN_SIDE.search(command):
        return "any"
    if shell in {"powershell", "cmd"}:
        return "windows"
    if _LINUX_ONLY.search(command):
        return "linux"
    if _MACOS_ONLY.search(command):
        return "macos"
    return "unix"


def _parse_cause(item: dict[str, Any], where: str) -> Cause:
    _check_keys(item, _CAUSE_KEYS, where)
    cause_id = _required_id(item, where)
    where = f"{where} ({cause_id})"
    checked_by = item.get("checked_by", [])
    if not isinstance(checked_by, list) or not all(isinstance(s, str) for s in checked_by):
        raise KnowledgeError(f"{where}: 'checked_by' must be a list of step ids")
    fixed_by = item.get("fixed_by", [])
    if not isinstance(fixed_by, list) or not all(isinstance(s, str) for s in fixed_by):
        raise KnowledgeError(f"{where}: 'fixed_by' must be a list of step ids")
    return _shaped(
        Cause,
        {
            "id": cause_id,
            "title": _required_text(item, "title", where),
            "why": _required_text(item, "why", where),
            "checked_by": tuple(checked_by),
            "fixed_by": tuple(fixed_by),
            "supported_if": _phrases(item.get("supported_if", []), f"{where}: supported_if"),
            "ruled_out_if": _phrases(item.get("ruled_out_if", []), f"{where}: ruled_out_if"),
        },
        where,
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
