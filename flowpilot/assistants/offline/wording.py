"""Wording: the chat reply and the handoff assessment, written from the reasoning's plan.

Everything quoted from people passes ``_inline`` (no HTML, no Markdown markup); the
knowledge texts were checked for HTML when they were loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from flowpilot.assistants.base import (
    Assessment,
    Conversation,
    LikelyCause,
    ProposedStep,
    Reply,
    StrongestFact,
    TriedStep,
    Unclear,
    tried_entries,
)
from flowpilot.assistants.offline.knowledge import Knowledge, Step, default_knowledge
from flowpilot.assistants.offline.reasoning import (
    _DISK_STRESS,
    SECURITY_FAMILY,
    Classification,
    Fact,
    Plan,
    RankedCause,
    _task_keys,
    assistant_history,
    classify,
    is_ransomware,
    mentions,
    open_questions,
    plan,
    telling_question,
)
from flowpilot.assistants.offline.text import OS_NAMES, _inline, _plain, _stemmed, words

STEPS_PER_REPLY = 3
QUESTIONS_FIRST_REPLY = 2
QUESTIONS_LATER_REPLY = 1
TRIAGE_QUESTIONS_FIRST_REPLY = 4
TRIAGE_QUESTIONS_LATER_REPLY = 2
ASSESS_NEXT_STEPS = 5
ASSESS_CAUSES = 5  # the most an assessment lists (the handoff screen's schema allows 5)
ACKNOWLEDGED_FAILURES = 2
LANE_POINTERS = 2  # lane steps a reply points at when it has nothing new to add

OS_QUESTION = (
    "Which operating system is the device on (Windows, macOS or Linux)? "
    "The commands assume Windows until you say."
)

# ------------------------------------------------------------------ close-out steps


# Ransomware: containment, not troubleshooting (re-mapping a drive or restarting services
# on an infected machine spreads it or destroys evidence).
CONTAINMENT_STEPS = (
    ProposedStep(
        title="Take the affected computers off the network",
        detail=(
            "Unplug the network cable or turn off Wi-Fi on every computer that can write to "
            "the renamed files. Do not shut them down: memory holds evidence and sometimes keys."
        ),
    ),
    ProposedStep(
        title="Stop access to the affected share",
        detail=(
            "Disable the share or remove write access on the file server so nothing more is "
            "encrypted; note the time and who had a session open on it."
        ),
    ),
    ProposedStep(
        title="Call the security incident contact",
        detail=(
            "Report it now with what you saw (the note's name, the new file extension, "
            "the first user who noticed). Do not pay, delete the note or restore yet."
        ),
    ),
)


# "The user confirmed", "confirmed with her": the confirmation step is done already.
_USER_CONFIRMED = re.compile(
    r"\b(?:user|users|she|he|they|customer|client)\s+(?:has\s+|have\s+)?confirm\w*"
    r"|\bconfirmed (?:it )?with (?:the )?(?:user|users|her|him|them|customer|client)\b",
    re.IGNORECASE,
)


def _closeout_steps(plan: Plan, conversation: Conversation) -> tuple[ProposedStep, ...]:
    lead = plan.lead.cause.title if plan.matched else "the cause"
    site = _plain(conversation.customer, 60)
    at = f" ({site})" if site else ""
    said = [line.text for line in conversation.messages if line.role == "user"]
    said += [task.outcome for task in conversation.tasks]
    confirmed = any(_USER_CONFIRMED.search(text) for text in said if text)
    confirm = ProposedStep(
        title="Confirm with the user that it works",
        detail=(
            f"Have the user{at} repeat what failed while you are still on the call; "
            "check a second user or device if more than one was affected."
        ),
    )
    return (
        *(() if confirmed else (confirm,)),
        ProposedStep(
            title="Record the root cause",
            detail=(
                f"Note why it happened ({lead}): what changed, when and by whom, "
                "so the next technician finds it in this session."
            ),
        ),
        ProposedStep(
            title="Prevent a repeat",
            detail=(
                "Fix what let it happen: an alert or monitor, a change note to the owner, "
                "a documented procedure or a follow-up ticket."
            ),
        ),
    )


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

    def plan(self, conversation: Conversation) -> Plan:
        """The reasoning behind a reply or an assessment (for callers that show it)."""
        return plan(conversation, self.knowledge)

    # -------------------------------------------------------------------- reply

    def reply(self, conversation: Conversation) -> Reply:
        """What FlowPilot says next in the chat, as Markdown plus proposed steps."""
        knowledge = self.knowledge
        the_plan = plan(conversation, knowledge)
        history = assistant_history(conversation, knowledge)
        if the_plan.resolved and the_plan.matched:
            return self._closeout(conversation, the_plan, history)
        if the_plan.matched and _newcomer(conversation):
            return self._where_it_stands(conversation, the_plan)

        paragraphs: list[str] = []
        paragraphs += _safety(the_plan)
        if is_ransomware(the_plan.security):
            steps = [s for s in CONTAINMENT_STEPS if not the_plan.lane.has_title(s.title)]
            return self._answer(paragraphs, steps, the_plan, "security", cause="")
        paragraphs += _codes(the_plan, history)
        stage = "diagnose"
        classification = the_plan.classification
        if not the_plan.matched:
            stage = "triage"
            if not history and classification.broad:
                paragraphs.append(
                    "Several things fail at once, so I won't guess one area. When mail, "
                    "Teams and files all fail together, the cause is usually something they "
                    "share: the network connection, the user's sign-in, or the device. "
                    "Let's scope it first."
                )
            elif not history:
                paragraphs.append(
                    "I can't match this to a known problem yet, so let's scope it first "
                    "and capture the basics."
                )
        elif classification.second_problem:
            stage = "two-problems"
            paragraphs.append(_two_problems(the_plan, knowledge, history))
        elif classification.strength == "weak":
            stage = "ask"
            paragraphs.append(_weak_match(the_plan, knowledge))
        else:
            intro = _introduction(the_plan, history)
            if intro:
                paragraphs.append(intro)

        lead = the_plan.lead
        acknowledgement = _acknowledge_failures(conversation, knowledge, the_plan, history)
        if the_plan.matched and lead.confirmed and stage == "diagnose":
            stage = "confirmed"
            paragraphs.append(_confirmed(lead, the_plan, history, knowledge))
        elif acknowledgement:
            paragraphs.append(acknowledgement)
        elif (
            the_plan.matched
            and stage == "diagnose"
            and (not mentions(history, lead.cause.title) or _fresh_fact(lead, history))
        ):
            paragraphs.append(_lead_paragraph(lead, the_plan))
        unread = _unread(the_plan, history)
        if unread:
            paragraphs.append(unread)
        answer = _answer_question(conversation, the_plan, knowledge, history)
        if answer:
            paragraphs.append(answer)

        proposals = _proposals(the_plan, stage)
        if stage == "ask":
            # Which of the two fits: one check of each tells them apart.
            proposals = _telling_apart(proposals, the_plan, knowledge)
        proposals = _room_in_lane(proposals, the_plan)
        if stage == "confirmed":
            # The answer is known: only its fixes, never more checks under "Fix".
            proposals = tuple(p for p in proposals if p.id in lead.cause.fixed_by)
            if not proposals and _fixes_done(lead, the_plan, knowledge):
                return self._reply(paragraphs, (), the_plan, stage)
        if not proposals:
            paragraphs += _nothing_new(conversation, the_plan)
            return self._reply(paragraphs, (), the_plan, stage)
        if not paragraphs:
            paragraphs.append(
                f"Continuing with **{the_plan.family.title}**."
                if the_plan.matched
                # No family: "General triage" is this engine's name for it, not the user's.
                else "No specific match yet, so the general checks continue."
            )

        questions = _questions(conversation, knowledge, the_plan, history, stage)
        if questions:
            lead_in = "To narrow it down:" if the_plan.matched else "To scope it:"
            paragraphs.append(lead_in + "\n\n" + "\n".join(f"- {q}" for q in questions))
        heading = (
            "Fix (commands are in the steps):"
            if stage == "confirmed"
            else ("Next steps (commands are in the steps):")
        )
        listed = "\n".join(f"{n}. {step.title}" for n, step in enumerate(proposals, start=1))
        paragraphs.append(f"{heading}\n\n{listed}")
        return self._reply(paragraphs, proposals, the_plan, stage)

    def _reply(
        self, paragraphs: list[str], steps: Iterable[Step], the_plan: Plan, stage: str
    ) -> Reply:
        """A reply proposing knowledge steps, their placeholders filled from the session."""
        proposed = [step.proposed(the_plan.values) for step in steps]
        cause = the_plan.lead.cause.id if the_plan.matched else ""
        return self._answer(paragraphs, proposed, the_plan, stage, cause=cause)

    def _answer(
        self,
        paragraphs: list[str],
        steps: Iterable[ProposedStep],
        the_plan: Plan,
        stage: str,
        *,
        cause: str,
    ) -> Reply:
        return Reply(
            text="\n\n".join(paragraphs),
            steps=tuple(steps),
            engine=self.name,
            stage=stage,
            family=the_plan.classification.family_id or "",
            cause=cause,
        )

    def _closeout(self, conversation: Conversation, the_plan: Plan, history: list[str]) -> Reply:
        """It works now: say what fixed it and walk the close-out."""
        lead = the_plan.lead
        said = _inline(the_plan.resolved, 80)
        paragraphs = []
        first_time = not mentions(history, "To close it out")
        if first_time:
            fact = lead.strongest
            because = f" ({_fact_phrase(fact)})" if fact and fact.quote else ""
            if lead.fixed:
                paragraphs.append(
                    f"Good: \u201c{said}\u201d. That confirms **{lead.cause.title}**{because}."
                )
            elif lead.support:
                # Words pointed at it, nothing recorded proves it: a restart or a change
                # nobody wrote down fixes many causes.
                paragraphs.append(
                    f"Good: \u201c{said}\u201d. What fixed it is not established: the "
                    f"evidence pointed at **{lead.cause.title}**{because}, but no check or "
                    "fix recorded here confirms it. Write down what changed last."
                )
            else:
                paragraphs.append(f"Good: \u201c{said}\u201d.")
        steps = tuple(
            step
            for step in _closeout_steps(the_plan, conversation)
            if not the_plan.lane.has_title(step.title)
        )
        if steps:
            listed = "\n".join(f"{n}. {s.title}" for n, s in enumerate(steps, start=1))
            paragraphs.append(
                "To close it out:\n\n" + listed + "\n\nThen resolve the session with the "
                "cause and the fix in the note."
            )
        else:
            waiting = [t.title for t in conversation.tasks if t.status in {"todo", "doing"}][:3]
            left = ", ".join(f"*{_inline(t, 80)}*" for t in waiting)
            paragraphs.append(
                "Close-out: "
                + (f"finish {left}, then " if left else "")
                + "resolve the session with the cause and the fix in the note."
            )
        return self._answer(paragraphs, steps, the_plan, "closeout", cause=lead.cause.id)

    def _where_it_stands(self, conversation: Conversation, the_plan: Plan) -> Reply:
        """The whole picture for someone new to the session (a senior who took it over):
        what was tried, the causes as the evidence ranks them, and what to do next."""
        paragraphs = [
            f"**Where this stands** ({the_plan.family.title}): "
            f"{_count_phrase(the_plan.lane.counts())}."
        ]
        paragraphs += _safety(the_plan)
        lead, *others = the_plan.causes
        paragraphs.append(_lead_paragraph(lead, the_plan))
        possible = [r.cause.title for r in others if r.tier >= 2][:2]
        if possible:
            paragraphs.append("Also possible: " + ", ".join(f"**{t}**" for t in possible) + ".")
        unlikely = [r for r in others if r.against and not r.support][:2]
        if unlikely:
            paragraphs.append(
                "Unlikely given the evidence: "
                + "; ".join(f"**{r.cause.title}** ({_fact_phrase(r.against[0])})" for r in unlikely)
                + "."
            )
        stage = "confirmed" if lead.confirmed else "diagnose"
        proposals = _proposals(the_plan, stage)
        if proposals:
            listed = "\n".join(f"{n}. {step.title}" for n, step in enumerate(proposals, start=1))
            paragraphs.append("Next steps (commands are in the steps):\n\n" + listed)
        if the_plan.in_lane:
            waiting = ", ".join(f"*{step.title}*" for step in the_plan.in_lane[:LANE_POINTERS])
            paragraphs.append(f"Already in the lane, not done yet: {waiting}.")
        return self._reply(paragraphs, proposals, the_plan, stage)

    # --------------------------------------------------------------- assessment

    def assess(self, conversation: Conversation, *, timeout: float | None = None) -> Assessment:
        """A handoff summary: what was tried, ranked causes, next steps, confidence.

        ``timeout`` is accepted for interface compatibility; this engine never waits.
        """
        knowledge = self.knowledge
        the_plan = plan(conversation, knowledge)
        causes = tuple(
            LikelyCause(title=ranked.cause.title, why=_why(ranked))
            for ranked in the_plan.causes[:ASSESS_CAUSES]
        )
        classification = the_plan.classification
        lead = the_plan.lead
        if not the_plan.matched or classification.strength != "strong":
            confidence = "low"
        elif the_plan.leading_cause_is_clear and (
            lead.confirmed or (the_plan.untried and _found_beyond_the_symptom(lead))
        ):
            confidence = "high"
        else:
            confidence = "medium"
        fact = lead.strongest if the_plan.matched else None
        clear = confidence != "low" and the_plan.leading_cause_is_clear
        # Untried includes steps waiting in the lane: a senior sees everything still open.
        steps = the_plan.worth_proposing(the_plan.untried)
        next_steps = tuple(step.proposed(the_plan.values) for step in steps[:ASSESS_NEXT_STEPS])
        summary = _summary(conversation, the_plan)
        if is_ransomware(the_plan.security):
            # An incident before a fault: containment first, and no cause is "likely" yet.
            sign = _plain(the_plan.security, 80)
            summary = f"Looks like ransomware (\u201c{sign}\u201d): contain it first. {summary}"
            next_steps = CONTAINMENT_STEPS
            confidence = "low"
        return Assessment(
            summary=summary,
            tried=tried_entries(conversation.tasks),
            causes=causes,
            next_steps=next_steps,
            confidence=confidence,
            engine=self.name,
            fact=(
                StrongestFact.quoted(
                    fact.quote,
                    fact.source,
                    lead.cause.title,
                    **(fact.origin.as_dict() if fact.origin else {}),
                )
                if fact
                else None
            ),
            unclear=None if clear else _unclear(conversation, knowledge, the_plan),
        )


def _found_beyond_the_symptom(lead: RankedCause) -> bool:
    """Whether something beyond the problem statement points at ``lead`` and none of its
    checks or fixes came back empty: the problem statement names the symptom, and a
    symptom that fits a cause is a guess until a finding (the escalation reason, a message,
    a step's outcome) backs it."""
    if lead.checked or lead.fix_failed:
        return False
    return any(f.origin is None or f.origin.kind != "problem" for f in lead.support)


GENERIC_ASK = (
    "What exactly does the user see: the error text, when it started, and who else is affected?"
)


def _unclear(conversation: Conversation, knowledge: Knowledge, the_plan: Plan) -> Unclear:
    """What the evidence leaves open, for "Not clear yet: X or Y — ask …".

    A weak match is unsure of the kind of problem: the two families (as the chat's "This
    looks like X or Y" says). A known kind with no cause singled out: its first two causes.
    The question is the one the session has not answered yet whose answer tells those two
    causes apart, else the family's first one still open.
    """
    classification = the_plan.classification
    questions = open_questions(conversation, knowledge, the_plan.family)
    telling = None
    if not the_plan.matched:
        options: list[str] = []
    elif classification.strength != "strong":
        other = classification.runner_up
        options = [the_plan.family.title]
        if other and other in knowledge.by_id:
            options.append(knowledge.by_id[other].title)
    else:
        first_two = [ranked.cause for ranked in the_plan.causes[:2]]
        options = [cause.title for cause in first_two]
        if len(first_two) == 2:
            telling = telling_question(questions, knowledge, *first_two)
    ask = (telling or questions[0]).text if questions else GENERIC_ASK
    return Unclear(options=tuple(options), ask=ask)


# ------------------------------------------------------------------ reply pieces


def _proposals(the_plan: Plan, stage: str, limit: int | None = STEPS_PER_REPLY) -> tuple[Step, ...]:
    """The steps to propose: untouched ones, fixes of a confirmed cause first."""
    steps = the_plan.worth_proposing(the_plan.untouched)
    if not the_plan.matched:
        # No family: generic fixes only once a check has confirmed their cause.
        confirmed = {i for r in the_plan.causes if r.confirmed for i in r.cause.fixed_by}
        steps = tuple(s for s in steps if s.kind == "check" or s.id in confirmed)
    if stage == "ask":
        # A weak match: one or two checks that tell the families apart, no fixes yet.
        steps = tuple(s for s in steps if s.kind == "check")[:2]
    lead = the_plan.lead
    if the_plan.matched and lead.support and not lead.against:
        # The evidence points at a cause: a fix for a cause nobody has evidence for (a
        # rescue boot while the report says "bad ownership of /home") is not proposed.
        backed = {
            i for r in the_plan.causes if r.support and not r.against for i in r.cause.fixed_by
        }
        fixes = {i for r in the_plan.causes for i in r.cause.fixed_by}
        steps = tuple(s for s in steps if s.id not in fixes or s.id in backed)
    return steps if limit is None else steps[:limit]


def _room_in_lane(proposals: tuple[Step, ...], the_plan: Plan) -> tuple[Step, ...]:
    """New steps only while the lane has room: with steps still waiting there, a reply adds
    up to STEPS_PER_REPLY waiting in all, and one more only when the evidence now favours a
    step that is not in the lane over every waiting one (otherwise it points at those)."""
    waiting = len(the_plan.in_lane)
    room = max(0, STEPS_PER_REPLY - waiting)
    favoured = the_plan.worth_proposing(the_plan.untried)
    if proposals and favoured and favoured[0] not in the_plan.in_lane:
        room = max(room, 1)
    return proposals[:room]


def _telling_apart(
    proposals: tuple[Step, ...], the_plan: Plan, knowledge: Knowledge
) -> tuple[Step, ...]:
    """For a weak match with a runner-up: the first check of the likelier family, then the
    first check of the other one that fits the device and is not in the lane yet."""
    other = the_plan.classification.runner_up
    if not other or other not in knowledge.by_id:
        return proposals
    lane = the_plan.lane
    second = next(
        (
            step
            for step in knowledge.by_id[other].steps
            if step.kind == "check"
            and step.runs_on(the_plan.device_os)
            and not lane.statuses(knowledge, step)
            and not (the_plan.failing_disk and _DISK_STRESS.search(step.command or step.title))
        ),
        None,
    )
    return (*proposals[:1], second) if second else proposals


def _questions(
    conversation: Conversation, knowledge: Knowledge, the_plan: Plan, history: list[str], stage: str
) -> list[str]:
    first_reply = not history
    if the_plan.matched:
        limit = QUESTIONS_FIRST_REPLY if first_reply else QUESTIONS_LATER_REPLY
    else:
        limit = TRIAGE_QUESTIONS_FIRST_REPLY if first_reply else TRIAGE_QUESTIONS_LATER_REPLY
    if stage == "confirmed":
        limit = 0  # the evidence answered what the questions were for
    found = [q.text for q in open_questions(conversation, knowledge, the_plan.family)][:limit]
    commands = [s for s in the_plan.untouched[:STEPS_PER_REPLY] if s.command and s.os != "any"]
    if not the_plan.device_os and commands and not mentions(history, OS_QUESTION):
        found.append(OS_QUESTION)
    return found


def _safety(the_plan: Plan) -> list[str]:
    paragraphs = []
    if the_plan.failing_disk:
        held = [s.title for s in the_plan.held_back if s.command][:2]
        paragraphs.append(
            f"**Back up first**: \u201c{_inline(the_plan.failing_disk, 60)}\u201d is a sign of a "
            "failing disk. Copy the user's data off it now, before anything else; repairs "
            "that read or write the whole disk (chkdsk, DISM, SFC) can finish it off"
            + (" and are held back" if held else "")
            + ". Plan a replacement."
        )
    if is_ransomware(the_plan.security):
        paragraphs.append(
            "**Security first: this looks like ransomware** "
            f"(\u201c{_inline(the_plan.security, 60)}\u201d). Contain it before any "
            "troubleshooting: take the computers that can write "
            "to the affected files off the network (unplug the cable or turn off Wi-Fi; do not "
            "shut them down), stop access to the share, and call whoever handles security "
            "incidents now. Leave the note and the renamed files as they are: they are "
            "evidence, and restoring from backup comes after it is contained."
        )
    elif the_plan.security and the_plan.classification.family_id != SECURITY_FAMILY:
        paragraphs.append(
            f"**Security first**: \u201c{_inline(the_plan.security, 60)}\u201d. If credentials "
            "may have been given away or a device infected, treat it as an incident: reset "
            "the password, revoke sign-in sessions, check for forwarding rules and tell "
            "security before troubleshooting anything else."
        )
    return paragraphs


def _codes(the_plan: Plan, history: list[str]) -> list[str]:
    """What the quoted error codes mean, each once in a conversation (not at the head of
    every reply)."""
    return [
        f"Error code `{code.code}`: {code.meaning}"
        for code in the_plan.classification.codes[:2]
        if not mentions(history, code.meaning)
    ]


def _weak_match(the_plan: Plan, knowledge: Knowledge) -> str:
    classification = the_plan.classification
    title = the_plan.family.title
    other = classification.runner_up
    if classification.request:
        return (
            f"This reads like a request rather than a fault (closest topic: **{title}**). "
            "If it is a request, handle it through the usual request process; if something "
            "is actually broken, tell me what the user sees and I'll troubleshoot it. "
            "If it is about a fault, a first check:"
        )
    if other and other in knowledge.by_id:
        return (
            f"This looks like **{title}** or **{knowledge.by_id[other].title}**: which fits "
            "better? Tell me the exact error or what the user sees, and I'll narrow it down. "
            "Meanwhile, a first check for each:"
        )
    return (
        f"This might be **{title}**, but the ticket says little that is specific. What exactly "
        "does the user see (the error text, when it started, who else is affected)? "
        "A first check meanwhile:"
    )


_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five"}


def _two_problems(the_plan: Plan, knowledge: Knowledge, history: list[str]) -> str:
    classification = the_plan.classification
    first = the_plan.family.title
    others = [
        knowledge.by_id[family_id].title
        for family_id in (classification.second_problem, *classification.more_problems)
    ]
    count = _COUNTS.get(len(others) + 1, str(len(others) + 1))
    if mentions(history, f"{count} problems {first}"):
        return f"Continuing with **{first}**."
    if len(others) == 1:
        return (
            f"This ticket has two problems: **{first}** and **{others[0]}**. Which comes first "
            f"for the user? I'll start with {first}; say if {others[0]} matters more, and "
            "consider a separate session for it."
        )
    listed = ", ".join(f"**{title}**" for title in others[:-1]) + f" and **{others[-1]}**"
    return (
        f"This ticket has {count} problems: **{first}**, {listed}. Which comes first for the "
        f"user? I'll start with {first}, the first one named; say if another matters more, "
        "and consider a separate session for each of the others."
    )


def _introduction(the_plan: Plan, history: list[str]) -> str:
    family = the_plan.family
    if mentions(history, family.title):
        return ""  # already introduced in an earlier reply
    if history:
        return f"With that detail, the closest match is now **{family.title}**."
    return f"Closest match in the troubleshooting guide: **{family.title}**."


def _source_phrase(fact: Fact) -> str:
    return _plain(fact.source, 120)


def _fact_phrase(fact: Fact) -> str:
    return f"\u201c{_inline(fact.quote, 120)}\u201d, {_source_phrase(fact)}"


def _fresh_fact(lead: RankedCause, history: list[str]) -> bool:
    fact = lead.strongest
    return bool(fact) and not mentions(history, _plain(fact.quote, 120))


def _lead_paragraph(lead: RankedCause, the_plan: Plan) -> str:
    cause = lead.cause
    if the_plan.classification.strength != "strong":
        return f"Possible cause, not confirmed: **{cause.title}**. {cause.why}"
    fact = lead.strongest
    if lead.confirmed:
        return f"Confirmed cause: **{cause.title}**. {cause.why} Evidence: {_fact_phrase(fact)}."
    if fact:
        quote = _inline(fact.quote, 120)
        return (
            f"Most likely cause: **{cause.title}**. {cause.why} It fits "
            f"{_source_phrase(fact)}: \u201c{quote}\u201d."
        )
    return f"Most likely cause (no evidence yet, so check it first): **{cause.title}**. {cause.why}"


def _confirmed(lead: RankedCause, the_plan: Plan, history: list[str], knowledge: Knowledge) -> str:
    fact = lead.strongest
    fixes = [s for s in the_plan.untouched if s.id in lead.cause.fixed_by]
    if _fixes_done(lead, the_plan, knowledge):
        # Its fixes are done and nobody has said it works: ask, rather than add checks.
        return (
            f"The fix for **{lead.cause.title}** is done. Does it work now? If it does, say "
            "so and I'll close this out; if not, record what still fails."
        )
    then = (
        " Apply the fix below, then check with the user."
        if fixes
        else (" Fix it at the source, then check with the user.")
    )
    if mentions(history, f"That points to {lead.cause.title}") and not _fresh_fact(lead, history):
        return f"Still **{lead.cause.title}**.{then}"
    return f"That points to **{lead.cause.title}**: {_fact_phrase(fact)}. {lead.cause.why}{then}"


def _fixes_done(lead: RankedCause, the_plan: Plan, knowledge: Knowledge) -> bool:
    """Every fix of the lead cause that applies here is marked done (none failed, waiting
    or untouched)."""
    fixes = [
        s
        for s in the_plan.family.steps
        if s.id in lead.cause.fixed_by and s not in the_plan.held_back
    ]
    return bool(fixes) and all(
        the_plan.lane.statuses(knowledge, s) & {"done"}
        and not the_plan.lane.statuses(knowledge, s) & {"failed", "todo", "doing"}
        for s in fixes
    )


# Words that carry no subject in a technician's question ("should I still ...?"), and the
# questions the reply answers anyway ("what next?", "is it fixed?").
_QUESTION_FILLER = frozenset(
    {"i", "we", "she", "he", "it", "they", "you", "me", "my", "her", "his", "our", "their"}
    | {"the", "a", "an", "to", "of", "or", "and", "is", "are", "was", "do", "does", "did"}
    | {"should", "shud", "shoud", "can", "could", "would", "will", "just", "still", "this"}
    | {"that", "what", "where", "how", "which", "why", "when", "who", "get", "from", "for"}
    | {"in", "on", "with", "be", "there", "any", "need", "now", "then", "if", "so", "at"}
    | {"next", "else", "anything", "further", "more", "help", "idea", "ideas", "try", "think"}
    | {"fixed", "fix", "work", "works", "working", "solved", "resolved", "sorted", "ok"}
    | {"okay", "good", "done", "it's", "its", "im", "ive", "i'm", "i've", "one", "them"}
)
_ASKS = re.compile(r"\?\s*$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _answer_question(
    conversation: Conversation, the_plan: Plan, knowledge: Knowledge, history: list[str]
) -> str:
    """The technician's latest message asks something: point at the step whose detail
    answers it, quoting that sentence, or say plainly that the guide does not say."""
    latest = conversation.messages[-1] if conversation.messages else None
    if latest is None or latest.role != "user":
        return ""
    asked = [part for part in _SENTENCE.split(latest.text.strip()) if _ASKS.search(part)]
    if not asked:
        return ""
    question = asked[-1]
    if mentions(history, _plain(question, 120)):
        return ""
    # As typed and with typos corrected ("pasword"): a correction never loses a word.
    said = {*_stemmed(question), *knowledge.facts(question).stemmed.split()}
    wanted = {word for word in said if word not in _QUESTION_FILLER}
    if not wanted:
        return ""  # "what next?", "is it fixed?": the rest of the reply answers it
    steps = the_plan.family.steps if the_plan.matched else ()
    best, best_score = None, 0
    for step in steps:
        score = len(wanted & _step_words(step.title, step.detail))
        if score > best_score:
            best, best_score = step, score
    quoted = f"\u201c{_inline(question, 120)}\u201d"
    if best is None or best_score < min(2, len(wanted)):
        return (
            f"I can't answer {quoted} from the troubleshooting guide. Ask a senior, or "
            "escalate if it blocks you."
        )
    sentences = [part for part in _SENTENCE.split(best.detail) if part.strip()]
    sentence = max(sentences, key=lambda part: len(wanted & _step_words(part, "")))
    return f"On {quoted}: *{_inline(best.title, 100)}* says \u201c{_inline(sentence, 240)}\u201d"


@lru_cache(maxsize=4096)
def _step_words(title: str, detail: str) -> frozenset[str]:
    return frozenset(_stemmed(f"{title} {detail}"))


def _unread(the_plan: Plan, history: list[str]) -> str:
    """Noted, and said plainly: what a check found that no cause's facts describe. It
    counts neither way, rather than as "checked, nothing found"."""
    fresh = [task for task in the_plan.unread if not mentions(history, _plain(task.outcome, 120))][
        :2
    ]
    if not fresh:
        return ""
    noted = " and ".join(
        f"*{_inline(task.title, 100)}* found \u201c{_inline(task.outcome, 120)}\u201d"
        for task in fresh
    )
    return (
        f"Noted: {noted}. I can't tell which cause that points to, so it counts neither "
        "for nor against any; say in a few words what it means if you can (what is wrong, "
        "or that it is as expected)."
    )


def _acknowledge_failures(
    conversation: Conversation, knowledge: Knowledge, the_plan: Plan, history: list[str]
) -> str:
    """'Since X failed, ...' for the latest failures not acknowledged in an earlier reply."""
    fresh = []
    for task in reversed(conversation.tasks):
        if task.status != "failed" or not words(task.title):
            continue
        if mentions(history, f"{_plain(task.title, 100)} failed"):
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
    if not the_plan.matched:
        return f"{clause}, let's move on to the next checks."
    lead = the_plan.lead
    if lead.support and not lead.against:
        # What was reported still points at the lead cause, failed check or not (a ping
        # that fails because the printer moved confirms it moved): stay with it.
        return (
            f"{clause}, the evidence still points at **{lead.cause.title}**: "
            f"{_fact_phrase(lead.strongest)}."
        )
    failed_keys = {key for task in fresh for key in _task_keys(task)}
    failed_ids = {
        step.id
        for step in the_plan.family.steps
        if {knowledge.step_titles[step.id], knowledge.step_commands[step.id]} & failed_keys
    }
    # The next cause is one with a step still to try: with none left, naming one would
    # contradict the "every step has been tried" that follows.
    untried = {step.id for step in the_plan.untried}
    cause = next(
        (
            r.cause
            for r in the_plan.causes
            if not failed_ids & set(r.cause.checked_by)
            and untried & {*r.cause.checked_by, *r.cause.fixed_by}
        ),
        None,
    )
    if cause is None:
        return f"{clause}."
    return f"{clause}, let's move on. Next most likely: **{cause.title}**. {cause.why}"


def _nothing_new(conversation: Conversation, the_plan: Plan) -> list[str]:
    """No new step to add: point at the lane steps the evidence favours, or summarise."""
    name = the_plan.family.title if the_plan.matched else "generic triage"
    if the_plan.in_lane:
        favoured = [s for s in the_plan.untried if s in the_plan.in_lane][:LANE_POINTERS]
        lead = the_plan.lead
        related = {*lead.cause.checked_by, *lead.cause.fixed_by} if the_plan.matched else set()
        pointed = " and ".join(
            f"*{step.title}*"
            + (f" (for **{lead.cause.title}**)" if index == 0 and step.id in related else "")
            for index, step in enumerate(favoured)
        )
        return [
            f"Next: {pointed}, already in the lane. Record what happens in the outcome and "
            "I'll take it from there."
        ]
    return [
        f"Every step I have for **{name}** has been tried and the problem is still open: "
        "escalate to a senior technician with this summary.",
        "**Summary for the handoff**\n\n" + "\n".join(_summary_bullets(conversation, the_plan)),
    ]


def _summary_bullets(conversation: Conversation, the_plan: Plan) -> list[str]:
    bullets = [f"- Problem: {_inline(conversation.problem, 160) or 'not described'}"]
    if conversation.customer:
        bullets.append(f"- Customer: {_inline(conversation.customer, 80)}")
    if conversation.device:
        bullets.append(f"- Device: {_inline(conversation.device, 80)}")
    bullets.append(f"- So far: {_count_phrase(the_plan.lane.counts())}")
    failed = [task for task in conversation.tasks if task.status == "failed"]
    if failed:
        names = ", ".join(f"*{_inline(task.title, 60)}*" for task in failed[-3:])
        bullets.append(f"- Failed: {names}")
    remaining = [r for r in the_plan.causes if r.tier >= 2]
    if remaining:
        fact = remaining[0].strongest
        evidence = f" ({_fact_phrase(fact)})" if fact else ""
        bullets.append(f"- Most likely remaining cause: **{remaining[0].cause.title}**{evidence}")
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


def _why(ranked: RankedCause) -> str:
    """The cause's explanation, with the facts for and against it and their sources."""
    parts = [ranked.cause.why]
    if ranked.fixed:
        parts.append(f"Confirmed: {_fact_phrase(ranked.support[0])}.")
    elif ranked.confirmed:
        parts.append(f"Found by a check: {_fact_phrase(ranked.strongest)}.")
    elif ranked.support:
        parts.append(f"Fits {_fact_phrase(ranked.support[0])}.")
    if ranked.against:
        parts.append(f"Against it: {_fact_phrase(ranked.against[0])}.")
    if ranked.fully_checked:
        names = ", ".join(f"\u201c{s.title}\u201d" for s in ranked.checked[:2])
        parts.append(f"Checked without finding it ({names}).")
    if ranked.fix_failed and not ranked.fixed:
        names = ", ".join(f"\u201c{s.title}\u201d" for s in ranked.fix_failed[:2])
        parts.append(f"Its fix did not solve it ({names}).")
    return " ".join(parts)


def _newcomer(conversation: Conversation) -> str:
    """Who wrote the latest message, when that person had not written before while others
    had: someone who just took the session over (a senior after a handoff)."""
    said = [line for line in conversation.messages if line.role == "user"]
    if len(said) < 2 or not said[-1].author:
        return ""
    earlier = {line.author for line in said[:-1] if line.author}
    return said[-1].author if earlier and said[-1].author not in earlier else ""


def _summary(conversation: Conversation, the_plan: Plan) -> str:
    problem = _plain(conversation.problem, 200) or "No problem statement."
    sentences = [f"Problem: {problem.rstrip('.')}."]
    classification = the_plan.classification
    if the_plan.matched:
        strength = "strong" if classification.strength == "strong" else "weak, unconfirmed"
        sentences.append(
            f"Offline knowledge base match: {the_plan.family.title} ({strength} match)."
        )
    else:
        sentences.append("No known problem family matched; generic triage applies.")
    if the_plan.device_os:
        sentences.append(f"Device: {OS_NAMES[the_plan.device_os]}.")
    sentences.append(f"{_count_phrase(the_plan.lane.counts()).capitalize()}.")
    if the_plan.failing_disk:
        sentences.append("Failing-disk signs: back up before any repair.")
    if not the_plan.untried:
        sentences.append("Every step in the playbook has been tried.")
    if conversation.escalation_reason.strip():
        who = f" by {_plain(conversation.escalated_by, 60)}" if conversation.escalated_by else ""
        urgency = f" (urgency: {_plain(conversation.urgency, 20)})" if conversation.urgency else ""
        reason = _plain(conversation.escalation_reason, 300).rstrip(".")
        sentences.append(f"Escalated{who}{urgency}: {reason}.")
    return " ".join(sentences)
