"""Time the offline FlowPilot engine's reply() on a 50-message session.

Run from the repository root: ``.venv/bin/python bench/offline_reply.py [iterations]``.
The engine needs no Django, so neither does this script.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowpilot.assistants.base import ChatLine, Conversation, TriedStep  # noqa: E402
from flowpilot.assistants.offline import (  # noqa: E402
    OfflineAssistant,
    default_knowledge,
    load_knowledge,
    reasoning,
)

USER_LINES = (
    "Outlook keeps asking for my password since the migration on Friday",
    "I cleared the credential manager like you said, still prompts",
    "OWA works fine in the browser, it's only the desktop app",
    "It's classic Outlook, version 2408, only me in the office as far as I know",
    "Signed out and back in, same prompt every few minutes",
)


def build_session(engine: OfflineAssistant) -> Conversation:
    """A realistic 50-message Outlook session, with the engine's own earlier replies."""
    outlook = default_knowledge().by_id["outlook"]
    tasks = (
        TriedStep(outlook.steps[0].title, "done", outcome="OWA works"),
        TriedStep(outlook.steps[1].title, "failed", outcome="Still prompts after clearing"),
        TriedStep(outlook.steps[2].title, "skipped"),
        TriedStep(outlook.steps[3].title, "doing"),
        TriedStep(outlook.steps[4].title, "todo"),
    )
    problem = "Outlook keeps asking for a password after the Microsoft 365 migration"
    messages: list[ChatLine] = []
    for turn in range(25):
        messages.append(ChatLine("user", f"{USER_LINES[turn % len(USER_LINES)]} ({turn})"))
        so_far = Conversation(problem=problem, messages=tuple(messages), tasks=tasks)
        messages.append(ChatLine("assistant", engine.reply(so_far).text))
    return Conversation(problem=problem, customer="Acme Ltd", messages=tuple(messages), tasks=tasks)


def measure(label: str, run, iterations: int) -> None:
    """Print p50/p95/max in microseconds for ``iterations`` calls of ``run``."""
    timings = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        run()
        timings.append((time.perf_counter_ns() - start) / 1000)
    timings.sort()
    p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
    print(
        f"{label:<44} p50 {statistics.median(timings):8.1f} us   "
        f"p95 {p95:8.1f} us   max {timings[-1]:8.1f} us"
    )


def main() -> None:
    """Build the session, time reply() warm and cold, and print the machine."""
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    start = time.perf_counter()
    knowledge = load_knowledge()
    load_ms = (time.perf_counter() - start) * 1000

    engine = OfflineAssistant(knowledge)
    session = build_session(engine)
    user = sum(1 for line in session.messages if line.role == "user")
    print(
        f"session: {len(session.messages)} messages ({user} from the user), "
        f"{len(session.tasks)} tasks, matched {engine.match(session)!r}"
    )
    print(
        f"knowledge: {len(knowledge.families)} families, loaded and validated in {load_ms:.1f} ms"
    )
    print(f"iterations: {iterations}")

    # Warm: chat text repeats from call to call, so per-text analysis is cached, as in use.
    measure("reply() warm (per-text cache in use)", lambda: engine.reply(session), iterations)

    # Cold: clear the per-text caches before every call, so all 50 messages are re-analysed
    # (matching, clauses and the evidence in each clause; typo corrections stay learned).
    def cold() -> None:
        knowledge.facts.cache_clear()
        knowledge.statements.cache_clear()
        knowledge.clause_evidence.cache_clear()
        reasoning._reported_in.cache_clear()  # which checks each text reports done
        engine.reply(session)

    measure("reply() cold (cache cleared every call)", cold, iterations)
    measure("assess() warm", lambda: engine.assess(session), iterations)

    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"machine: {platform.platform()}; {platform.machine()}; "
        f"cpu count {os.cpu_count()}; processor {platform.processor() or 'n/a'}; "
        f"Python {platform.python_version()} ({platform.python_implementation()})"
    )


if __name__ == "__main__":
    main()
