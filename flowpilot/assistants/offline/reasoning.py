"""Reasoning: which family, which causes the evidence favours, which steps come next.

Pure functions of a ``Conversation`` and the ``Knowledge``: no wording here. ``plan``
returns everything the wording layer needs, including the facts (quoted, with where they
came from) behind each cause, so a reply or an assessment can say why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Literal

from flowpilot.assistants.base import BRIEFING_PREFIX, ChatLine, Conversation, TriedStep
from flowpilot.assistants.offline.knowledge import (
    SPECIFIC_WEIGHT,
    Cause,
    ErrorCode,
    Family,
    Knowledge,
    Question,
    Step,
    default_knowledge,
)
from flowpilot.assistants.offline.text import (
    NEGATIONS,
    POSITIVE_STATES,
    _clauses,
    _normalize_command,
    _stemmed,
    detect_os,
    normalize,
    reports_not_done,
    reports_resolved,
    reports_still_broken,
    session_values,
)
from flowpilot.steps import FINISHED

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
# A family needs MIN_SCORE to be considered at all. It is claimed (a "strong" match) only
# on real evidence: a specific phrase or error code, or two different signals; and with a
# clear lead over the runner-up. Anything less is "weak": the reply says so and asks.
MIN_SCORE = 4.0
STRONG_SCORE = 10.0
STRONG_LEAD = 1.5
# Two problems in one ticket: both families have real evidence, the second at least this
# share of the first, and the text joins them ("also", "as well", "another problem").
SECOND_PROBLEM_SHARE = 0.3
_SECOND_PROBLEM = re.compile(
    r"\b(?:also|as well|another (?:issue|problem)|second (?:issue|problem)|on top of (?:that|this)"
    r"|plus|separately|in addition|two (?:things|issues|problems)|another thing)\b",
    re.IGNORECASE,
)

# A service request rather than a fault ("wants a second monitor", "need a shared
# mailbox created"): no family that handles faults is claimed from it with confidence.
_REQUEST = re.compile(
    r"\b(?:wants?|would like|needs? (?:a|an|another|new|to have|access)|request(?:s|ed|ing)?"
    r"|order(?:ing)? (?:a|an|new)|please (?:create|set up|add|provide|order)"
    r"|can (?:we|you|i|she|he|they) (?:get|have|order)|create (?:a|an)|set up (?:a|an) new"
    r"|needs? (?:\w+ ){1,4}(?:installed|set up|created|added)"
    r"|(?:please|can you|could you) install)\b",
    re.IGNORECASE,
)
_FAULT = re.compile(
    r"\b(?:not|no|never|can ?n[o']?t|won'?t|does ?n'?t|did ?n'?t|is ?n'?t|fail\w*|errors?"
    r"|broken|stopp?\w*|issues?|problems?|crash\w*|freez\w*|slow|down|missing|lost|locked"
    r"|denied|unable|bounc\w*|drop\w*|keeps?|again|stuck|wrong|offline|blank|flicker\w*"
    r"|expired?|gone|disappear\w*|0x[0-9a-f]+)\b",
    re.IGNORECASE,
)
# "Nothing works", "everything is down": several areas at once. Unless one family is
# clearly it, scope first (which fails, since when, who else) instead of guessing one.
_BROAD = re.compile(
    r"\b(?:nothing (?:works|is working|loads|opens|works any ?more)"
    r"|everything (?:is )?(?:down|broken|fails|failing|slow|stopped)"
    r"|can'?t (?:do|get to|access|open) anything|all (?:systems|apps|services) (?:are )?down)\b",
    re.IGNORECASE,
)

# Failing-disk signs hold back repairs that stress the disk; security wording puts the
# incident steps first.
# "On-prem AD only", "no Entra", "not hybrid": the cloud directory's steps do not apply.
_NO_CLOUD = re.compile(
    r"\b(?:on[- ]?prem(?:ises)?(?: (?:ad|active directory|exchange))? only"
    r"|only on[- ]?prem(?:ises)?|no (?:entra(?: id| connect)?|azure(?: ad)?|aad|cloud)\b"
    r"|not hybrid|no hybrid)",
    re.IGNORECASE,
)
# Steps that need the cloud directory (Entra ID, Graph, Entra Connect sync).
_CLOUD_STEP = re.compile(
    r"\b(?:Entra|Azure AD|AzureAD|Mg[A-Z]\w+|Connect-MgGraph|ADSync\w*|Microsoft Graph)",
)
_FAILING_DISK = re.compile(
    r"reallocated|pending sectors?|bad sectors?|smart (?:status|error|warning|fail)\w*"
    r"|smart\W+(?:caution|bad|failing)|(?:disk|drive|hdd|ssd)\w* (?:is |are )?(?:failing|dying)"
    r"|clicking (?:noise|sound)|i/o (?:device )?error|predictive fail\w*|crc errors?"
    r"|event (?:id )?(?:7|51|153)\b|cyclic redundancy",
    re.IGNORECASE,
)
_DISK_STRESS = re.compile(
    r"\b(?:chkdsk|dism|sfc|defrag|optimize-volume|repair-volume|fsck)\b", re.I
)
SECURITY_FAMILY = "phishing"
# Files held to ransom: a ransom note, a payment in crypto, files renamed to a new extension.
_RANSOMWARE_SIGNS = (
    r"ransom\w*|bitcoins?|\bbtc\b|monero|crypto ?wallet|pay (?:\w+ )?to (?:decrypt|unlock|get)"
    r"|decrypt(?:ion|or)? (?:key|tool|your|the|our|my)"
    r"|files (?:\w+ ){0,4}(?:renamed|changed) (?:\w+ ){0,2}to \.\w{2,10}\b"
    r"|files (?:\w+ ){0,2}(?:end|ending) (?:in|with) \.\w{2,10}\b|\.(?:locked|encrypted|crypted)\b"
    r"|(?:how_to_decrypt|how_to_recover|restore_files|decrypt)[\w-]*\.(?:txt|html?)"
)
_RANSOMWARE = re.compile(_RANSOMWARE_SIGNS, re.IGNORECASE)


def is_ransomware(sign: str) -> bool:
    """Whether a security sign is one of files held to ransom."""
    return bool(sign and _RANSOMWARE.search(sign))


_SECURITY = re.compile(
    r"phish\w*|hacked|compromis\w*|ransom\w*|fake (?:login |sign[- ]in )?(?:page|site|website)"
    r"|entered (?:her|his|their|my) (?:password|credentials)|clicked (?:a|the|on) (?:\w+ )?link"
    r"|sign[- ]?ins? from (?:another|a different|an unknown) country|impossible travel"
    r"|emails? (?:she|he|they|i) didn'?t (?:write|send)|malware|virus"
    r"|encrypted (?:our |my |the )?files"
    rf"|{_RANSOMWARE_SIGNS}",
    re.IGNORECASE,
)

# ----------------------------------------------------------------------- matching


@dataclass(frozen=True)
class Classification:
    """Which family a conversation is about, and how sure the match is."""

    family_id: str | None  # None: nothing matched, the generic triage applies
    score: float
    strength: Literal["strong", "weak", "none"]
    scores: tuple[tuple[str, float], ...] = ()  # every family that scored, best first
    runner_up: str | None = None  # weak match: the other family it could be
    second_problem: str | None = None  # a second, separate problem in the same ticket
    more_problems: tuple[str, ...] = ()  # a third and more, in the order they are named
    codes: tuple[ErrorCode, ...] = ()  # known error codes quoted in the conversation
    request: bool = False  # worded as a service request, not a fault
    broad: bool = False  # "nothing works": several areas at once


def classify(conversation: Conversation, knowledge: Knowledge | None = None) -> Classification:
    """Match the conversation (problem first, then user messages) to a problem family."""
    knowledge = knowledge or default_knowledge()
    totals: dict[str, float] = {}
    signals: dict[str, int] = {}
    specific: set[str] = set()

    def add(text: str, weight: float) -> None:
        facts = knowledge.facts(text)
        if facts.corrects_course:
            weight *= CORRECTION_MULTIPLIER
        for family_id, score in facts.scores:
            totals[family_id] = totals.get(family_id, 0.0) + score * weight
        for family_id, count, is_specific in facts.signals:
            signals[family_id] = signals.get(family_id, 0) + count
            if is_specific:
                specific.add(family_id)

    add(conversation.problem, PROBLEM_WEIGHT)
    if conversation.escalation_reason:
        add(conversation.escalation_reason, MESSAGE_WEIGHT)
    user_texts = _people_messages(conversation)
    for position, text in enumerate(user_texts, start=1):
        add(text, LATEST_MESSAGE_WEIGHT if position == len(user_texts) else MESSAGE_WEIGHT)
    for task in conversation.tasks:
        if task.outcome:
            add(task.outcome, MESSAGE_WEIGHT)  # what the checks found is evidence too
    codes = tuple(
        dict.fromkeys(
            code
            for text in (conversation.problem, conversation.escalation_reason, *user_texts)
            for code in knowledge.codes_in(text)
        )
    )

    ranked = sorted(
        ((family_id, score) for family_id, score in totals.items() if score > 0),
        key=lambda item: (-item[1], knowledge.rank(item[0])),
    )
    if not ranked or ranked[0][1] < MIN_SCORE:
        return Classification(
            None, ranked[0][1] if ranked else 0.0, "none", tuple(ranked), codes=codes
        )

    def real(family_id: str) -> bool:
        return family_id in specific or signals.get(family_id, 0) >= 2

    best_id, best = ranked[0]
    runner_id, runner = ranked[1] if len(ranked) > 1 else (None, 0.0)
    said = [conversation.problem, *user_texts]
    if any(_says(_BROAD, text) for text in said) and not (
        best_id in specific and best >= STRONG_LEAD * STRONG_SCORE
    ):
        # Several areas at once ("nothing works"): no family is singled out.
        return Classification(None, best, "none", tuple(ranked), codes=codes, broad=True)
    request = (
        not knowledge.by_id[best_id].requests
        and any(_says(_REQUEST, text) for text in said)
        and not any(_says(_FAULT, text) for text in said)
    )
    if runner_id and real(best_id) and real(runner_id) and runner >= SECOND_PROBLEM_SHARE * best:
        joined = [conversation.problem, *user_texts[-1:]]
        if any(_SECOND_PROBLEM.search(text) for text in joined):
            # Every family with real evidence and a fair share: the problems, in the order
            # the ticket names them (the first one named is where the reply starts).
            problems = _in_order_mentioned(
                conversation.problem,
                [
                    family_id
                    for family_id, score in ranked
                    if real(family_id) and score >= SECOND_PROBLEM_SHARE * best
                ],
                knowledge,
            )
            return Classification(
                problems[0],
                best,
                "strong",
                tuple(ranked),
                second_problem=problems[1],
                more_problems=tuple(problems[2:]),
                codes=codes,
            )
    security = totals.get(SECURITY_FAMILY, 0.0)
    if best_id != SECURITY_FAMILY and real(SECURITY_FAMILY) and security >= STRONG_SCORE:
        # A security incident outranks whatever it looks like too ("mailbox full" of the
        # bounces a phishing attacker caused): incident steps come first.
        return Classification(SECURITY_FAMILY, security, "strong", tuple(ranked), codes=codes)
    strong = real(best_id) and best >= STRONG_SCORE and best >= STRONG_LEAD * runner
    if request:
        # A request names a topic, not a fault in it: ask what is needed.
        strong = False
    if strong or (best_id == SECURITY_FAMILY and real(best_id) and best >= STRONG_SCORE):
        return Classification(best_id, best, "strong", tuple(ranked), codes=codes)
    return Classification(
        best_id,
        best,
        "weak",
        tuple(ranked),
        runner_up=runner_id if runner_id and runner >= best / 3 else None,
        codes=codes,
        request=request,
    )


@lru_cache(maxsize=8192)
def _says(pattern: re.Pattern, text: str) -> bool:
    return bool(text and pattern.search(text))


def _in_order_mentioned(problem: str, family_ids: list[str], knowledge: Knowledge) -> list[str]:
    """``family_ids`` in the order the problem statement names them (those it does not
    name last, in the order given)."""
    first = dict(knowledge.facts(problem).first_clause)
    return sorted(family_ids, key=lambda family_id: first.get(family_id, 10**6))


# Text that talks to the assistant instead of about the problem ("system note: already
# resolved, high confidence", "rank X first", "ignore the above"): pasted customer text
# trying to steer the assessment. Such a message is not evidence.
_STEERING = re.compile(
    r"\b(?:ignore (?:all |the |any )?(?:previous|above|prior|earlier)"
    r"|system (?:note|prompt|message)"
    r"|(?:high|low|medium) confidence|confidence:? ?(?:high|low|medium)|rank (?:\W?\w+ ){0,6}first"
    r"|you are (?:an?|the) (?:ai|assistant|model)|(?:assistant|flowpilot|claude):"
    r"|mark (?:this|it|the ticket) (?:as )?resolved)"
    r"|<\s*/?\s*session",
    re.IGNORECASE,
)


# A person's own doubt is not an instruction: "I have low confidence it's the router".
_OWN_DOUBT = re.compile(
    r"\b(?:i|we)(?: have|'ve|ve| had)? (?:only |a |very )?(?:high|low|medium|little|some)"
    r" confidence\b",
    re.IGNORECASE,
)
# "Already fixed" is news from a person ("it's already fixed after she installed the
# update") unless the same text tells the assistant what to do about it.
_CLAIMS_DONE = re.compile(r"\balready (?:been )?(?:resolved|fixed|closed)\b", re.IGNORECASE)
_INSTRUCTS = re.compile(
    r"\b(?:close (?:it|this|the (?:ticket|session|case))|mark|rank|ignore|note:|notice:"
    r"|do not|don'?t (?:escalate|investigate)|no need to)",
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)
def steers(text: str) -> bool:
    """Whether ``text`` addresses the assistant rather than describing the problem."""
    text = _OWN_DOUBT.sub(" ", text or "")
    if _STEERING.search(text):
        return True
    return bool(_CLAIMS_DONE.search(text) and _INSTRUCTS.search(text))


def _is_evidence(line: ChatLine) -> bool:
    return (
        line.role == "user" and not line.text.startswith(BRIEFING_PREFIX) and not steers(line.text)
    )


def _people_messages(conversation: Conversation) -> list[str]:
    """What people typed about the problem: not the briefing FlowPilot's handoff wrote, not
    text that tries to steer the assistant."""
    return [line.text for line in conversation.messages if _is_evidence(line)]


def evidence_texts(conversation: Conversation) -> list[tuple[str, str, Origin]]:
    """(text, where it came from, the same in parts) for everything that counts as
    evidence: the outcomes recorded on tasks, what people typed (not the briefing, not
    steering text), the escalation reason and the problem. FlowPilot's own words are never
    in it. The most telling first, for a quote found in several: recorded outcomes and
    people's messages newest first, then the escalation reason, then the problem."""
    found = [
        (task.outcome, _outcome_source(task), _outcome_origin(task))
        for task in reversed(conversation.tasks)
        if task.outcome.strip()
    ]
    found += [
        (line.text, _whose(line.author), Origin("message", author=line.author))
        for line in reversed(conversation.messages)
        if _is_evidence(line)
    ]
    found.append((conversation.escalation_reason, "the escalation reason", Origin("reason")))
    found.append((conversation.problem, "the problem", Origin("problem")))
    return [(text, source, origin) for text, source, origin in found if text and text.strip()]


def own_texts(conversation: Conversation) -> list[str]:
    """FlowPilot's own words in the session: its replies and the handoff briefing."""
    return [
        line.text
        for line in conversation.messages
        if line.role == "assistant" or line.text.startswith(BRIEFING_PREFIX)
    ]


# ------------------------------------------------------------------ session state


BLOCKED = "blocked"  # a lane status of this module only: tried, but could not be done


def _not_carried_out(task: TriedStep) -> bool:
    return task.status in {"done", "failed"} and reports_not_done(task.outcome)


def _task_keys(task: TriedStep) -> tuple[str, ...]:
    # A task is a knowledge step if its normalized title or its command matches.
    return tuple(key for key in (normalize(task.title), _normalize_command(task.command)) if key)


class _Lane:
    """The lane's tasks indexed by normalized title and command."""

    def __init__(self, tasks: tuple[TriedStep, ...]) -> None:
        self.tasks = tasks
        self._statuses: dict[str, set[str]] = {}
        for task in tasks:
            # A step that could not be carried out ("no access to the room") found nothing
            # either way: it is neither checked nor a failed fix, and still a next step
            # for someone who can do it.
            status = BLOCKED if _not_carried_out(task) else task.status
            for key in _task_keys(task):
                self._statuses.setdefault(key, set()).add(status)

    def statuses(self, knowledge: Knowledge, step: Step) -> set[str]:
        """Statuses of every task that is this step (same title, or same command)."""
        found = set(self._statuses.get(knowledge.step_titles[step.id], ()))
        command = knowledge.step_commands[step.id]
        if command:
            found |= self._statuses.get(command, set())
        return found

    def has_title(self, title: str) -> bool:
        return normalize(title) in self._statuses

    def counts(self) -> dict[str, int]:
        """How many tasks are in each status, in a fixed order."""
        counts = dict.fromkeys(("done", "failed", "skipped", "doing", "todo"), 0)
        for task in self.tasks:
            counts[task.status] = counts.get(task.status, 0) + 1
        return counts


# ----------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class Origin:
    """Where a fact came from, in parts: the screen says "Tess Tran wrote …" or
    "Step “Restart DNS service” — done: …" from these, not from the ``source`` sentence."""

    kind: Literal["problem", "reason", "message", "outcome"]
    author: str = ""  # a message: who wrote it ("" when unknown)
    step: str = ""  # an outcome: the task's title
    status: str = ""  # an outcome: the task's status

    def as_dict(self) -> dict[str, str]:
        """The stored form (``flowpilot.assistants.base.StrongestFact``'s parts)."""
        parts = {"kind": self.kind}
        if self.kind == "message" and self.author:
            parts["author"] = self.author
        if self.kind == "outcome":
            parts["step"] = self.step
            parts["status"] = self.status
        return parts


@dataclass(frozen=True)
class Fact:
    """Something a person reported or an outcome recorded, quoted with where it came from."""

    quote: str  # the words, as written (one clause or outcome, trimmed)
    source: str  # "the problem", "Tess's message", "the outcome of 'Check sign-in logs'"
    direction: Literal["supports", "confirms", "rules out"]
    strength: int  # 3: a fix worked; 2: a check found it; 1: reported in words
    step_id: str = ""  # the knowledge step whose recorded outcome this is
    recent: bool = False  # from the latest message: what the technician just reported
    words: int = 0  # length of the phrase it matched: "disk at 100" says more than "100"
    origin: Origin | None = None  # ``source`` in parts


@dataclass(frozen=True)
class Statement:
    """One clause people wrote, with its stemmed words and where it came from."""

    words: tuple[str, ...]
    text: str
    source: str
    from_outcome_of: str = ""  # step id whose recorded outcome this is
    recent: bool = False
    origin: Origin | None = None


def _findings(facts: tuple[Fact, ...]) -> tuple[Fact, ...]:
    """The facts found after the problem was stated (not the problem statement itself)."""
    return tuple(f for f in facts if f.origin is not None and f.origin.kind != "problem")


@dataclass(frozen=True)
class RankedCause:
    cause: Cause
    facts: tuple[Fact, ...] = ()  # for and against, strongest first
    checked: tuple[Step, ...] = ()  # its checks done without finding anything either way
    fix_failed: tuple[Step, ...] = ()  # its fixes tried without fixing the problem
    other_os: bool = False  # every command that checks or fixes it is for another OS

    @cached_property
    def support(self) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.direction in {"supports", "confirms"})

    @cached_property
    def against(self) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.direction == "rules out")

    @cached_property
    def confirmed(self) -> bool:
        """A fix for it worked, or a check found its condition, and nothing rules it out."""
        return not self.against and any(f.strength >= 2 for f in self.support)

    @cached_property
    def fixed(self) -> bool:
        return not self.against and any(f.direction == "confirms" for f in self.support)

    @cached_property
    def fully_checked(self) -> bool:
        return bool(self.checked) and len(self.checked) >= len(self.cause.checked_by)

    @cached_property
    def tier(self) -> int:
        """Confirmed above supported above untested above checked above ruled out."""
        if self.against and not self.support:
            return 0
        if self.fixed:
            return 5
        if self.confirmed:
            return 4
        if self.support and not self.against:
            return 3
        if self.support and self.against and not self.fix_failed:
            # Mixed: what was found since (a message, an outcome) outweighs how the problem
            # was first described, either way.
            if _findings(self.support) and not _findings(self.against):
                return 3
            if _findings(self.against) and not _findings(self.support):
                return 0
            # Both found since: the latest report corrects the earlier one.
            if any(f.recent for f in self.support) and not any(f.recent for f in self.against):
                return 3
            if any(f.recent for f in self.against) and not any(f.recent for f in self.support):
                return 0
        if self.fully_checked or self.fix_failed or self.against:
            return 1
        return 2

    @cached_property
    def score(self) -> int:
        # What the technician just reported counts extra: the reply acts on the news. A
        # finding (the escalation reason, a message, an outcome) counts a little more than
        # the problem statement: the symptom fits several causes, a finding explains it.
        strength = sum(
            f.strength + 2 * f.recent + (f.origin is not None and f.origin.kind != "problem")
            for f in self.support[:3]
        )
        return 2 * strength - 3 * len(self.against[:2]) - len(self.checked) - len(self.fix_failed)

    @cached_property
    def specificity(self) -> int:
        return max((f.words for f in self.support), default=0)

    @cached_property
    def strongest(self) -> Fact | None:
        """The fact to quote for it: the strongest kind (a fix worked, a check found it,
        reported in words); among equals what was reported later and more specifically,
        so a technician's finding beats the problem statement it explains."""
        if not self.support:
            return None
        return max(
            reversed(self.support),
            key=lambda f: (
                f.strength,
                f.origin is not None and f.origin.kind != "problem",
                f.recent,
                f.words,
            ),
        )


@dataclass(frozen=True)
class Plan:
    """Everything reply() and assess() derive from one conversation."""

    classification: Classification
    family: Family
    lane: _Lane
    untouched: tuple[Step, ...]  # not in the lane at all: what a reply may propose
    untried: tuple[Step, ...]  # not started or finished: todo ones included
    in_lane: tuple[Step, ...]  # waiting as todo/doing
    causes: tuple[RankedCause, ...]  # most likely first
    device_os: str = ""
    values: dict[str, str] = field(default_factory=dict)  # placeholder values
    resolved: str = ""  # the words that report the problem fixed, when it is
    failing_disk: str = ""  # the words that show a failing disk
    security: str = ""  # the words that make it a security matter
    held_back: tuple[Step, ...] = ()  # left out for safety (disk stress) or the wrong OS
    unlikely_steps: frozenset[str] = frozenset()  # check only causes the report contradicts
    # Checks whose recorded outcome found something the knowledge cannot read ("4740 shows
    # source PC-OLD-22"): counted neither for nor against a cause, and said so.
    unread: tuple[TriedStep, ...] = ()

    def worth_proposing(self, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        """``steps`` without those that only check or fix contradicted causes, unless that
        is all there is: then their checks are the last resort, never their fixes (a fix
        right after "unlikely given the evidence" contradicts the reply)."""
        plausible = tuple(step for step in steps if step.id not in self.unlikely_steps)
        return plausible or tuple(step for step in steps if step.kind == "check")

    @property
    def matched(self) -> bool:
        return self.classification.family_id is not None

    @property
    def lead(self) -> RankedCause:
        return self.causes[0]

    @property
    def leading_cause_is_clear(self) -> bool:
        """The evidence points at the first cause and at no other as strongly."""
        first = self.causes[0]
        runner_up = self.causes[1] if len(self.causes) > 1 else None
        return (
            bool(first.support)
            and not first.against
            and (runner_up is None or (first.tier, first.score) > (runner_up.tier, runner_up.score))
        )


def plan(conversation: Conversation, knowledge: Knowledge) -> Plan:
    """Classify, weigh the evidence for each cause, and order the steps."""
    classification = classify(conversation, knowledge)
    family = (
        knowledge.by_id[classification.family_id]
        if classification.family_id
        else knowledge.fallback
    )
    people = _people_messages(conversation)
    device_os = next(
        (
            found
            for text in (conversation.device, conversation.problem, *people)
            if (found := _os_of(text))
        ),
        "",
    )
    everything = [conversation.problem, conversation.escalation_reason, *people]
    everything += [task.outcome for task in conversation.tasks]
    failing_disk = next((found for text in everything if (found := _disk_sign(text))), "")
    no_cloud = any(_NO_CLOUD.search(text) for text in everything if text)
    security = next((found for text in everything if (found := _security_sign(text))), "")

    # Until the technician names the OS, commands assume Windows (the reply says so), so a
    # Mac's own commands are not proposed beside Windows ones; a family with no Windows
    # step assumes nothing, and Unix tools for a server (openssl, ssh) stay.
    assumed_os = "windows" if any(step.os == "windows" for step in family.steps) else ""
    lane = _Lane(conversation.tasks)
    reported = _reported_checks(
        [conversation.problem, conversation.escalation_reason, *people]
        + [task.outcome for task in conversation.tasks],
        knowledge,
        family,
    )
    untouched, untried, in_lane, tried = [], [], [], {}
    held_back, done = [], set()
    for step in family.steps:
        statuses = lane.statuses(knowledge, step)
        unsafe = failing_disk and _stresses_disk(step.command or step.title)
        mac_only = not device_os and assumed_os and step.command and step.os == "macos"
        cloud = no_cloud and _CLOUD_STEP.search(f"{step.title} {step.command}")
        if (not step.runs_on(device_os) or mac_only or unsafe or cloud) and not statuses:
            # Wrong OS for this device, it would stress the disk, or it needs a cloud
            # directory the technician said there is none of.
            held_back.append(step)
            continue
        if step.id in reported and not statuses:
            continue  # its result is already in the chat: not proposed again
        if not statuses:
            untouched.append(step)
        if not statuses & (FINISHED_STATUSES | {"doing"}):
            untried.append(step)
        if statuses & LANE_STATUSES and not statuses & FINISHED_STATUSES:
            in_lane.append(step)
        if statuses & {"done", "failed"}:
            tried[step.id] = step
        if "done" in statuses:
            done.add(step.id)

    statements = _statements(conversation, knowledge, tried.values())
    matches = _evidence(statements, knowledge, family)
    resolved = _resolved(conversation, knowledge)
    resolved_lines = _resolved_lines(conversation, statements) if resolved else []
    unread = _unread_findings(conversation, knowledge, family, tried, matches)
    # A check that found something unreadable did not find "nothing": it is not counted
    # as checked without finding for its causes.
    unread_ids = {step_id for step_id, _ in unread}
    checked_tried = {
        step_id: step
        for step_id, step in tried.items()
        if step.kind != "check" or step_id not in unread_ids
    }
    ranked = []
    for position, cause in enumerate(family.causes):
        weighed = _weigh(cause, matches, checked_tried, resolved_lines)
        if device_os and _for_another_os(cause, knowledge, device_os):
            weighed = replace(weighed, other_os=True)
        ranked.append((position, weighed))
    # A confirmed cause first, then supported ones, untested, checked, ruled out; within a
    # tier the evidence score, a finding over the symptom alone, then the data file's
    # order. A cause whose every command is for another operating system ("logs on
    # Windows" on a Mac) goes last unless the evidence supports it.
    ranked.sort(
        key=lambda item: (
            item[1].other_os and not item[1].support,
            -item[1].tier,
            -item[1].score,
            # At the same score, what a check or a person found beats the symptom alone.
            not _findings(item[1].support),
            -item[1].specificity,
            item[0],
        )
    )
    causes = tuple(item for _, item in ranked)
    if resolved and not any(c.fixed for c in causes):
        # "Works now": the cause whose fix was done is the one it was (the one whose fix's
        # own outcome says so, else the only one with a fix done); failing that, the lead
        # when a check found its condition. Not when only words pointed at a cause: a
        # restart or an unrecorded change fixes many, and the close-out then says the
        # cause is not established.
        credited = _credited_fix(causes, done, statements) or (
            causes[0] if causes[0].confirmed else None
        )
        if credited is not None:
            said, source, origin = _resolved_source(conversation)
            fact = Fact(_trim(said) or resolved, source, "confirms", 3, origin=origin)
            # Once a fix worked, the checks on the way there say nothing against it.
            fixed = RankedCause(credited.cause, (fact, *credited.facts), other_os=credited.other_os)
            causes = (fixed, *(c for c in causes if c is not credited))
    return Plan(
        classification=classification,
        family=family,
        lane=lane,
        untouched=_by_evidence(untouched, causes, device_os),
        untried=_by_evidence(untried, causes, device_os),
        in_lane=tuple(in_lane),
        causes=causes,
        device_os=device_os,
        values=session_values(conversation.device, (conversation.problem, *people)),
        resolved=resolved,
        failing_disk=failing_disk,
        security=security,
        held_back=tuple(held_back),
        unlikely_steps=_unlikely_steps(causes),
        unread=tuple(task for _, task in unread),
    )


# An outcome that says a check found nothing, or that the thing checked is fine: "no
# errors", "nothing in the log", "all clean", "looks normal".
_NOTHING_FOUND = NEGATIONS | frozenset(
    {"nothing", "none", "nobody", "clean", "empty", "same", "unchanged", "steady", "stable"}
    | {"expected", "passed", "pass", "success", "successful", "succeeded", "green"}
    | {"reachable", "respond", "running"}
)


def _unread_findings(
    conversation: Conversation,
    knowledge: Knowledge,
    family: Family,
    tried: dict[str, Step],
    matches: _Matches,
) -> list[tuple[str, TriedStep]]:
    """The family's checks whose outcome reports a finding the knowledge does not read:
    not a fact for or against any cause, not "nothing found" or "fine", not a resolution,
    not a report that it could not be done. (step id, its task) in lane order."""
    read = {
        statement.text
        for found in matches.values()
        for statement, _size, _reading in found
        if statement.origin is not None and statement.origin.kind == "outcome"
    }
    checks = {
        key: step_id
        for step_id, step in tried.items()
        if step.kind == "check"
        for key in (knowledge.step_titles[step_id], knowledge.step_commands[step_id])
        if key
    }
    found = []
    for task in conversation.tasks:
        outcome = task.outcome.strip()
        step_id = next((checks[k] for k in _task_keys(task) if k in checks), "")
        if not step_id or not outcome or task.status not in {"done", "failed"}:
            continue
        if _not_carried_out(task) or reports_resolved(outcome) or reports_still_broken(outcome):
            continue
        words = {word for clause in knowledge.clauses(outcome) for word in clause}
        if words & (_NOTHING_FOUND | POSITIVE_STATES):
            continue
        parts = {part for _, part in knowledge.statements(outcome)}
        if parts & read:
            continue
        found.append((step_id, task))
    return found


# Words that make a sentence about a check a plan or a wish, not its result ("I'll try safe
# mode", "haven't tried it yet", "should we restart it").
_NOT_YET = frozenset(
    {"havent", "hasnt", "hadnt", "yet", "ill", "will", "going", "gonna", "should", "shall"}
    | {"can", "could", "might", "may", "try", "trying", "lets", "plan", "wont", "need"}
    # A guess is not a result: "I think the DNS points at the router".
    | {"maybe", "perhaps", "probably", "possibly", "think", "guess", "suspect", "wonder"}
    | {"assume", "likely", "unsure"}
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")


def _reported_checks(texts: list[str], knowledge: Knowledge, family: Family) -> frozenset[str]:
    """The family's checks whose result people already gave in their own words (a step's
    ``done_if``: "it stays up in safe mode"), which are not proposed again. A question, a
    plan ("I'll try safe mode") or a report that it could not be done says nothing."""
    if not any(step.id in knowledge.done_phrases for step in family.steps):
        return frozenset()
    said = frozenset().union(*(_reported_in(knowledge, text) for text in texts if text))
    return frozenset(step.id for step in family.steps if step.id in said)


@lru_cache(maxsize=8192)
def _reported_in(knowledge: Knowledge, text: str) -> frozenset[str]:
    """Every step (of any family) whose ``done_if`` one text reports, once per text: chat
    history is sent again with every reply."""
    if reports_not_done(text):
        return frozenset()
    found: set[str] = set()
    for sentence in _SENTENCES.split(text):
        if sentence.rstrip().endswith("?"):
            continue
        for clause in knowledge.clauses(sentence):
            if _NOT_YET.intersection(clause):
                continue
            for position, word in enumerate(clause):
                for rest, step_id in knowledge.done_index.get(word, ()):
                    if clause[position + 1 : position + 1 + len(rest)] == rest:
                        found.add(step_id)
    return frozenset(found)


def _credited_fix(
    causes: tuple[RankedCause, ...], done: set[str], statements: list[Statement]
) -> RankedCause | None:
    """The cause whose fix made it work: its fix's own outcome says it works now, else it
    is the only cause with a fix done. None when that is not known."""
    said_so = {s.from_outcome_of for s in statements if reports_resolved(s.text)}
    for ranked in causes:
        if said_so & set(ranked.cause.fixed_by) & done:
            return ranked
    with_a_fix_done = [r for r in causes if done & set(r.cause.fixed_by)]
    return with_a_fix_done[0] if len(with_a_fix_done) == 1 else None


def _for_another_os(cause: Cause, knowledge: Knowledge, device_os: str) -> bool:
    """Whether every command that checks or fixes ``cause`` runs only on another OS."""
    steps = [
        knowledge.steps[i] for i in (*cause.checked_by, *cause.fixed_by) if i in knowledge.steps
    ]
    local = [step for step in steps if step.command and step.os != "any"]
    return bool(local) and len(local) == len(steps) and not any(s.runs_on(device_os) for s in local)


@lru_cache(maxsize=4096)
def _os_of(text: str) -> str:
    return detect_os(text)


@lru_cache(maxsize=4096)
def _disk_sign(text: str) -> str:
    found = _FAILING_DISK.search(text or "")
    return found.group(0) if found else ""


@lru_cache(maxsize=4096)
def _security_sign(text: str) -> str:
    found = _SECURITY.search(text or "")
    return found.group(0) if found else ""


@lru_cache(maxsize=1024)
def _stresses_disk(command: str) -> bool:
    return bool(_DISK_STRESS.search(command))


def _resolved(conversation: Conversation, knowledge: Knowledge) -> str:
    """The words reporting the problem gone, unless something later says it is not.

    Read from the technician's messages and the outcomes recorded on tasks, never from
    the problem statement. A check's outcome is a finding, not the problem gone: "ping
    works now" says the printer answers, not that the user can print.
    """
    people = _people_messages(conversation)
    checks = _check_keys(knowledge)
    problem = set(_stemmed(conversation.problem))
    found = ""
    for text in people:
        if reports_resolved(text):
            found = reports_resolved(text)
        elif found and reports_still_broken(text):
            found = ""
    for task in conversation.tasks:
        if task.status != "done":
            continue
        said = reports_resolved(task.outcome)
        is_check = any(key in checks for key in _task_keys(task))
        title = set(_stemmed(task.title))
        if said and is_check and _about_the_check(task.outcome, said, title, problem):
            continue
        if said and not (people and reports_still_broken(people[-1])):
            found = found or said
    return found


def _about_the_check(text: str, said: str, title: set[str], problem: set[str]) -> bool:
    """Whether "works now" in a check's outcome ``text`` is about what the check titled
    ``title`` tried, not the problem: "ping works now" on "Ping the printer" says the
    printer answers, not that the user can print; "Teams opens normally now" on "Try Teams
    on the web" is the problem gone. (Not applied to messages: "site is back up" after an
    app pool check is the problem gone.)"""
    before = text[: text.casefold().find(said.casefold())]
    subject = set(_clauses(before)[-1][-3:]) if _clauses(before) else set()
    return bool(subject & title) and not subject & problem


@lru_cache(maxsize=8)
def _check_keys(knowledge: Knowledge) -> frozenset[str]:
    """The titles and commands of steps that only check (no fix shares them)."""
    checks, fixes = set(), set()
    for step_id, step in knowledge.steps.items():
        keys = {knowledge.step_titles[step_id], knowledge.step_commands[step_id]} - {""}
        (checks if step.kind == "check" else fixes).update(keys)
    return frozenset(checks - fixes)


def _resolved_source(conversation: Conversation) -> tuple[str, str, Origin | None]:
    """The words that report it fixed (the whole message or outcome), and where they are."""
    for line in reversed(conversation.messages):
        if line.role == "user" and reports_resolved(line.text):
            return line.text, _whose(line.author), Origin("message", author=line.author)
    for task in reversed(conversation.tasks):
        if task.status == "done" and reports_resolved(task.outcome):
            return task.outcome, _outcome_source(task), _outcome_origin(task)
    return "", "a recorded outcome", None


def _outcome_source(task: TriedStep) -> str:
    return f"the outcome of \u201c{_short_title(task)}\u201d"


def _outcome_origin(task: TriedStep) -> Origin:
    return Origin("outcome", step=_short_title(task), status=task.status)


def _short_title(task: TriedStep) -> str:
    return " ".join(task.title.split())[:80]


def _whose(author: str) -> str:
    return f"{author}'s message" if author else "the technician's message"


def _statements(
    conversation: Conversation, knowledge: Knowledge, tried: Iterable[Step]
) -> list[Statement]:
    """Every clause people reported, with its source: the evidence for and against causes."""
    found: list[Statement] = []

    def add(
        text: str, source: str, origin: Origin, step_id: str = "", recent: bool = False
    ) -> None:
        for words, part in knowledge.statements(text):
            found.append(Statement(words, part, source, step_id, recent, origin))

    add(conversation.problem, "the problem", Origin("problem"))
    add(conversation.escalation_reason, "the escalation reason", Origin("reason"))
    people = [line for line in conversation.messages if _is_evidence(line)]
    for line in people:
        add(
            line.text,
            _whose(line.author),
            Origin("message", author=line.author),
            recent=line is people[-1],
        )
    steps_by_key = {}
    for step in tried:
        for key in (knowledge.step_titles[step.id], knowledge.step_commands[step.id]):
            if key:
                steps_by_key[key] = step.id
    for task in conversation.tasks:
        if not task.outcome.strip() or _not_carried_out(task):
            continue
        step_id = next((steps_by_key[k] for k in _task_keys(task) if k in steps_by_key), "")
        add(task.outcome, _outcome_source(task), _outcome_origin(task), step_id)
    return found


# (cause id, for it?) -> [(statement, phrase length, reading)]
_Matches = dict[tuple[str, bool], list[tuple[Statement, int, str]]]


def _evidence(statements: list[Statement], knowledge: Knowledge, family: Family) -> _Matches:
    """Every cause phrase each statement states or denies, found through the phrase index
    (one dict lookup per word, not one scan per phrase; cached per clause)."""
    causes = {cause.id for cause in family.causes}
    found: _Matches = {}
    for statement in statements:
        for cause_id, for_it, size, reading in knowledge.clause_evidence(statement.words):
            if cause_id in causes:
                found.setdefault((cause_id, for_it), []).append((statement, size, reading))
        # A quoted error code that names a cause is a fact for it ("0x800f0922": the
        # System Reserved partition), as specific as a three-word phrase.
        for code in knowledge.codes_in(statement.text):
            if code.cause in causes:
                found.setdefault((code.cause, True), []).append((statement, 3, "yes"))
    return found


def _weigh(
    cause: Cause,
    matches: _Matches,
    tried: dict[str, Step],
    resolved_lines: list[tuple[str, str, tuple[Statement, ...]]],
) -> RankedCause:
    """The facts for and against one cause, from what was reported and recorded."""
    facts: list[Fact] = []
    seen: set[tuple[str, str]] = set()

    def note(statement: Statement, direction: str, strength: int, words: int = 0) -> None:
        key = (statement.text, direction)
        if key in seen:
            return
        seen.add(key)
        facts.append(
            Fact(
                _trim(statement.text),
                statement.source,
                direction,
                strength,
                statement.from_outcome_of,
                statement.recent,
                words,
                statement.origin,
            )
        )

    # One clause can match a fact twice ("doesn't remember the old password" states
    # "doesn't remember the old" and negates "old password"): the longer reading wins.
    readings: dict[int, tuple[Statement, str, int]] = {}
    for statement, size, reading in matches.get((cause.id, True), ()):
        kept = readings.get(id(statement))
        if kept is None or (reading == "yes" and (kept[1] != "yes" or size > kept[2])):
            readings[id(statement)] = (statement, reading, size)
    for statement, reading, size in readings.values():
        on_own_check = statement.from_outcome_of in cause.checked_by
        on_own_fix = statement.from_outcome_of in cause.fixed_by
        if reading == "yes":
            if on_own_fix or reports_resolved(statement.text):
                note(statement, "confirms", 3, size)
            else:
                note(statement, "supports", 2 if on_own_check else 1, size)
        else:
            note(statement, "rules out", 2 if on_own_check else 1)
    for statement, _size, reading in matches.get((cause.id, False), ()):
        if reading == "yes":
            on_own_check = statement.from_outcome_of in cause.checked_by
            note(statement, "rules out", 2 if on_own_check else 1)
    # A message that states a fact for this cause and, later in the same message, that it
    # works now ("DNS service was stopped; started it; names resolve again"): fixed.
    stated = {id(s) for s, reading, _ in readings.values() if reading == "yes"}
    if not any(f.direction == "confirms" for f in facts):
        for text, source, parts in resolved_lines:
            if stated & {id(part) for part in parts}:
                origin = parts[0].origin if parts else None
                facts.append(Fact(_trim(text), source, "confirms", 3, origin=origin))
                break

    checked, fix_failed = [], []
    fixed = any(f.direction == "confirms" for f in facts)
    for step_id in cause.checked_by:
        # A check whose outcome said something about this cause counted as that fact; once
        # a fix worked, the checks on the way there say nothing against it.
        if step_id in tried and not fixed and not any(f.step_id == step_id for f in facts):
            checked.append(tried[step_id])
    for step_id in cause.fixed_by:
        if step_id in tried and not any(f.direction == "confirms" for f in facts):
            fix_failed.append(tried[step_id])
    facts.sort(key=lambda f: (f.direction == "rules out", -f.strength))
    return RankedCause(cause, tuple(facts), tuple(checked), tuple(fix_failed))


def _resolved_lines(
    conversation: Conversation, statements: list[Statement]
) -> list[tuple[str, str, tuple[Statement, ...]]]:
    """People's messages that report it works now, with the statements they consist of."""
    lines = []
    by_source: dict[str, list[Statement]] = {}
    for statement in statements:
        by_source.setdefault(statement.source, []).append(statement)
    for line in conversation.messages:
        if _is_evidence(line) and reports_resolved(line.text):
            source = _whose(line.author)
            own = tuple(s for s in by_source.get(source, ()) if s.text in line.text)
            lines.append((line.text, source, own))
    return lines


def _trim(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "\u2026"


def _unlikely_steps(causes: tuple[RankedCause, ...]) -> frozenset[str]:
    """Ids of the steps that check only causes the report contradicts."""
    possible = {
        step_id
        for r in causes
        if not (r.against and not r.support)
        for step_id in (*r.cause.checked_by, *r.cause.fixed_by)
    }
    unlikely = {
        step_id
        for r in causes
        if r.against and not r.support
        for step_id in (*r.cause.checked_by, *r.cause.fixed_by)
    }
    return frozenset(unlikely - possible)


def _by_evidence(
    steps: list[Step], causes: tuple[RankedCause, ...], device_os: str = ""
) -> tuple[Step, ...]:
    """Steps for a cause the evidence favours first (its fix first once it is confirmed,
    else its checks), steps that only touch contradicted causes last, the rest in order.

    On a Mac or a Linux machine, among steps the evidence ranks alike, the ones run on the
    device itself come before admin-side ones: the files list the Windows steps first and
    the other systems' own commands after them."""
    first: dict[str, tuple[int, int]] = {}
    urgent = {step.id for step in steps if step.urgent}
    for rank, ranked in enumerate(r for r in causes if r.support and not r.against):
        fixes_first = ranked.confirmed
        for step_id in ranked.cause.fixed_by:
            # Incident steps (urgent) come first as soon as their cause is plausible.
            first.setdefault(step_id, (rank, 0 if fixes_first or step_id in urgent else 2))
        for step_id in ranked.cause.checked_by:
            first.setdefault(step_id, (rank, 1))
    unlikely = _unlikely_steps(causes)
    fix_ids = {s for r in causes for s in r.cause.fixed_by}

    local_first = device_os in {"macos", "linux"}

    def key(item: tuple[int, Step]) -> tuple[int, int, int, int, int]:
        position, step = item
        remote = int(local_first and not (step.command and step.os in {device_os, "unix"}))
        if step.id in first:
            rank, order = first[step.id]
            return (0, rank, order, remote, position)
        if step.id in unlikely:
            return (3, 0, 0, remote, position)
        # Fixes for causes nobody has evidence for yet wait behind the checks.
        return (2 if step.id in fix_ids else 1, 0, 0, remote, position)

    return tuple(step for _, step in sorted(enumerate(steps), key=key))


def open_questions(
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
    said = [knowledge.facts(text).stemmed for text in user_texts]  # typos corrected
    asked = [_as_written(text) for text in replied_to]  # FlowPilot's own words, as written

    found = []
    for question in family.questions:
        phrases = knowledge.answer_phrases[question.id]
        if any(phrase in text for phrase in phrases for text in said):
            continue
        # Asked in an earlier reply and the user has written since: treat it as answered
        # rather than nagging; the technician can always volunteer more.
        if any(knowledge.question_texts[question.id] in text for text in asked):
            continue
        found.append(question)
    return found


def telling_question(
    questions: list[Question], knowledge: Knowledge, first: Cause, second: Cause
) -> Question | None:
    """Of ``questions``, the one whose answers best tell ``first`` and ``second`` apart.

    Each answer a question expects (its ``answered_if``) reads for a cause, against it, or
    neither (the cause's ``supported_if`` / ``ruled_out_if``). An answer tells the two apart
    when it reads differently for them: for one and against the other counts 2, for or
    against one alone 1, the same for both nothing ("Access denied" answers "what do you
    see?" but supports both permission causes). Ties keep the family's order; None when no
    question tells them apart.
    """
    best, best_score = None, 0
    for question in questions:
        score = _telling_score(knowledge, question.id, first.id, second.id)
        if score > best_score:
            best, best_score = question, score
    return best


@lru_cache(maxsize=4096)
def _telling_score(knowledge: Knowledge, question_id: str, first_id: str, second_id: str) -> int:
    """How well a question's answers tell two causes apart (see ``telling_question``); the
    knowledge never changes once loaded, so each pair is scored once per process."""

    def readings(cause_id: str) -> tuple[tuple[str, ...], ...]:
        return tuple(
            tuple(" " + " ".join(stemmed) + " " for _, stemmed in phrases)
            for phrases in knowledge.cause_evidence[cause_id]
        )

    def direction(answer: str, for_it: tuple[str, ...], against_it: tuple[str, ...]) -> int:
        def said(phrases: tuple[str, ...]) -> bool:
            return any(answer in phrase or phrase in answer for phrase in phrases)

        return int(said(for_it)) - int(said(against_it))

    first, second = readings(first_id), readings(second_id)
    return sum(
        abs(direction(answer, *first) - direction(answer, *second))
        for answer in knowledge.answer_phrases[question_id]
    )


@lru_cache(maxsize=4096)
def _as_written(text: str) -> str:
    """``text`` as padded stemmed words, without typo correction: FlowPilot's own replies
    are compared with its own sentences, word for word."""
    return " " + " ".join(word for clause in _clauses(text) for word in clause) + " "


def assistant_history(conversation: Conversation, knowledge: Knowledge) -> list[str]:
    return [_as_written(line.text) for line in conversation.messages if line.role == "assistant"]


def mentions(history: list[str], text: str) -> bool:
    needle = " " + " ".join(_stemmed(text)) + " "
    return any(needle in said for said in history)


__all__ = [
    "SPECIFIC_WEIGHT",
    "Classification",
    "Fact",
    "Origin",
    "Plan",
    "RankedCause",
    "assistant_history",
    "classify",
    "evidence_texts",
    "mentions",
    "open_questions",
    "own_texts",
    "plan",
]
