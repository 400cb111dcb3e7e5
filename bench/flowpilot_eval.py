"""Replay the FlowPilot evaluation set through the offline engine and grade it.

    .venv/bin/python bench/flowpilot_eval.py [--set tickets|holdout] [-v] [--json]

The tickets (tests/flowpilot/eval/tickets.toml) were written before the engine was tuned,
then the engine was improved on their misses, so their score flatters it. The held-out set
(tests/flowpilot/eval/holdout.toml) was written later, before any of it was run, and is
never edited to pass: its figures are the honest ones.
Each is replayed as the app does it: the problem opens a session, FlowPilot replies and its
steps land in the lane as "todo"; each follow-up turn marks the first step FlowPilot put in
the lane (status and outcome) and/or posts the technician's message, and FlowPilot replies.

Printed figures (docs/PERFORMANCE.md):
- family right: the reply's family is the expected one ("triage": no family claimed);
  for a ticket with two problems, either family with the reply saying there are two;
- confidently wrong: a wrong family stated as the likely cause (a strong match, not a
  question) — the figure that must stay at 0;
- step relevance: one of the first three proposed steps contains a word a senior expects;
- cause right: the lead cause is one a senior would name first (tickets that list some);
- follow-ups acting on evidence: the turn's reply leads with the cause the reported
  evidence points at, or closes out when it says it works now;
- "works now" closed out: the turns that say so, answered with the close-out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowpilot.assistants.base import ChatLine, Conversation, TriedStep  # noqa: E402
from flowpilot.assistants.offline import OfflineAssistant  # noqa: E402
from flowpilot.assistants.offline.text import reports_resolved  # noqa: E402

EVAL_DIR = ROOT / "tests" / "flowpilot" / "eval"
SETS = ("tickets", "holdout")
# The families the engine had when the set was written (by file name).
ORIGINAL_FAMILIES = frozenset(
    {
        "account",
        "backup",
        "certificate",
        "disk",
        "dns",
        "email-delivery",
        "mailbox",
        "mapped-drive",
        "mfa",
        "outlook",
        "printer",
        "rdp",
        "slow",
        "software",
        "teams-audio-video",
        "vpn",
        "wifi",
    }
)
# The eval names families by their file name; the engine by the id inside the file.
ALIASES = {
    family.source.removesuffix(".toml"): family.id
    for family in OfflineAssistant().knowledge.families
}


def load_tickets(name: str = "tickets") -> list[dict]:
    with (EVAL_DIR / f"{name}.toml").open("rb") as handle:
        return tomllib.load(handle)["ticket"]


def expected_family(name: str) -> str:
    return "" if name == "triage" else ALIASES.get(name, name)


def _with_reply(conversation: Conversation, reply, author: str = "Tess") -> Conversation:
    lane = list(conversation.tasks)
    titles = {t.title for t in lane}
    for step in reply.steps:
        if step.title not in titles:
            lane.append(TriedStep(title=step.title, status="todo", command=step.command))
            titles.add(step.title)
    return replace(
        conversation,
        messages=(*conversation.messages, ChatLine("assistant", reply.text)),
        tasks=tuple(lane),
    )


def _apply_turn(conversation: Conversation, turn: dict, proposed_first: str) -> Conversation:
    tasks = list(conversation.tasks)
    if turn.get("mark"):
        for index, task in enumerate(tasks):
            if task.title == proposed_first or (not proposed_first and task.status == "todo"):
                tasks[index] = replace(task, status=turn["mark"], outcome=turn.get("outcome", ""))
                break
    messages = conversation.messages
    if turn.get("say"):
        messages = (*messages, ChatLine("user", turn["say"], author="Tess"))
    return replace(conversation, tasks=tuple(tasks), messages=messages)


def step_text(step) -> str:
    return f"{step.title} {step.command} {step.detail}".casefold()


def grade(engine: OfflineAssistant, ticket: dict) -> dict:
    conversation = Conversation(problem=ticket["problem"], device=ticket.get("device", ""))
    reply = engine.reply(conversation)
    want = expected_family(ticket["family"])
    also = expected_family(ticket.get("also", "")) if ticket.get("also") else None
    claimed = reply.family if reply.stage not in {"triage"} else ""
    if also:
        family_right = claimed in {want, also} and reply.stage == "two-problems"
    else:
        family_right = claimed == want if want else reply.stage in {"triage", "ask"}
    strong = reply.stage in {"diagnose", "confirmed", "two-problems"}
    confidently_wrong = strong and claimed not in {want, also} - {None}
    relevant = [w.casefold() for w in ticket.get("relevant", [])]
    steps_right = any(any(w in step_text(s) for w in relevant) for s in reply.steps[:3])
    causes = ticket.get("causes", [])
    cause_right = None
    if causes:
        assessment = engine.assess(conversation)
        top = [c.title for c in assessment.causes[:2]]
        titles = {
            c.id: c.title for f in engine.knowledge.families for c in f.causes if c.id in causes
        }
        cause_right = any(titles.get(cause_id) in top for cause_id in causes)

    turns = []
    first_title = reply.steps[0].title if reply.steps else ""
    conversation = _with_reply(conversation, reply)
    for turn in ticket.get("turn", []):
        conversation = _apply_turn(conversation, turn, first_title)
        answer = engine.reply(conversation)
        expect = turn["expect"]
        if expect == "closeout":
            ok = answer.stage == "closeout"
        elif expect.startswith("cause:"):
            ok = answer.cause == expect.removeprefix("cause:") and answer.stage != "closeout"
        elif expect.startswith("family:"):
            ok = answer.family == expected_family(expect.removeprefix("family:"))
        else:
            raise ValueError(f"{ticket['id']}: unknown expectation {expect!r}")
        said = f"{turn.get('say', '')} {turn.get('outcome', '')}"
        turns.append(
            {
                "expect": expect,
                "ok": ok,
                "stage": answer.stage,
                "cause": answer.cause,
                "works_now": bool(reports_resolved(said)) and expect == "closeout",
            }
        )
        first_title = answer.steps[0].title if answer.steps else ""
        conversation = _with_reply(conversation, answer)
    return {
        "id": ticket["id"],
        "outside": ticket["family"] not in ORIGINAL_FAMILIES,
        "messy": ticket.get("kind") == "messy",
        "family": claimed,
        "stage": reply.stage,
        "family_right": family_right,
        "confidently_wrong": confidently_wrong,
        "steps_right": steps_right,
        "cause_right": cause_right,
        "turns": turns,
    }


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="list every miss")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--set", choices=SETS, default="tickets", help="which ticket set")
    args = parser.parse_args()

    engine = OfflineAssistant()
    results = [grade(engine, ticket) for ticket in load_tickets(args.set)]
    turns = [turn for r in results for turn in r["turns"]]
    works_now = [t for t in turns if t["expect"] == "closeout"]
    with_causes = [r for r in results if r["cause_right"] is not None]
    summary = {
        "tickets": len(results),
        "outside_original_families": sum(r["outside"] for r in results),
        "messy": sum(r["messy"] for r in results),
        "family_right": _pct(sum(r["family_right"] for r in results), len(results)),
        "family_right_outside": _pct(
            sum(r["family_right"] for r in results if r["outside"]),
            sum(r["outside"] for r in results),
        ),
        "confidently_wrong": sum(r["confidently_wrong"] for r in results),
        "step_relevance": _pct(sum(r["steps_right"] for r in results), len(results)),
        "cause_right": _pct(sum(r["cause_right"] for r in with_causes), len(with_causes)),
        "followup_tickets": sum(bool(r["turns"]) for r in results),
        "followups_on_evidence": _pct(sum(t["ok"] for t in turns), len(turns)),
        "works_now_closed_out": _pct(sum(t["ok"] for t in works_now), len(works_now)),
    }
    if args.json:
        print(json.dumps({"summary": summary, "results": results}, indent=2))
        return
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        print(f"{key.replace('_', ' '):<{width}}  {value}")
    if args.verbose:
        print()
        for r in results:
            misses = []
            if not r["family_right"]:
                misses.append(f"family {r['family'] or '-'} ({r['stage']})")
            if r["confidently_wrong"]:
                misses.append("CONFIDENTLY WRONG")
            if not r["steps_right"]:
                misses.append("steps")
            if r["cause_right"] is False:
                misses.append("cause")
            for number, t in enumerate(r["turns"], start=1):
                if not t["ok"]:
                    misses.append(
                        f"turn {number}: want {t['expect']}, got {t['stage']}/{t['cause']}"
                    )
            if misses:
                print(f"{r['id']:<18} " + "; ".join(misses))


if __name__ == "__main__":
    main()
