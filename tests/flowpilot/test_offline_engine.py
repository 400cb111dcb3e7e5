"""The offline FlowPilot engine: matching, step planning, safety and knowledge validation.

Plain pytest: the engine needs neither the database nor Django settings.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowpilot.assistants.base import ChatLine, Conversation, TriedStep
from flowpilot.assistants.offline import (
    KNOWLEDGE_DIR,
    VALID_SHELLS,
    KnowledgeError,
    OfflineAssistant,
    classify,
    default_knowledge,
    load_knowledge,
    normalize,
)
from flowpilot.assistants.offline.knowledge import DESTRUCTIVE
from flowpilot.assistants.offline.text import PLACEHOLDER, session_values

# One realistic ticket per family, as a technician would type it.
PROBLEMS = {
    "dns": "Users can't reach intranet.corp.local, nslookup times out but it works by IP",
    "vpn": "GlobalProtect VPN won't connect from home, says gateway unreachable",
    "printer": "Nothing prints on the 2nd floor HP printer, jobs stuck in the print queue",
    "outlook": "Outlook keeps asking for a password after the Microsoft 365 migration",
    "mailbox-full": "User gets a warning that her mailbox is full and she can't send email",
    "disk-full": "Server C drive is full, only 200 MB free space left",
    "account-lockout": "Account keeps getting locked out every morning since he changed password",
    "mfa": "User got a new phone and no longer gets the Microsoft Authenticator MFA prompt",
    "wifi": "Laptop keeps dropping the Wi-Fi connection several times an hour",
    "slow-pc": "Reception PC is very slow and freezes, disk at 100% in Task Manager",
    "rdp": "Remote Desktop to the accounts server fails with a CredSSP encryption oracle error",
    "certificate": "Customer portal shows NET::ERR_CERT_DATE_INVALID, the SSL certificate expired",
    "backup": "Veeam backup job failed last night on the file server VM",
    "mapped-drive": "The S: mapped drive shows a red X and access denied since this morning",
    "software": "Windows Update fails with 0x80070643 on three laptops",
    "email-delivery": "Emails to a customer bounce back with an NDR 550 5.7.1",
    "teams-audio-video": "In Teams meetings nobody can hear me, the headset microphone is dead",
    "phishing": "User entered her password on a fake Microsoft login page from a phishing email",
    "bitlocker": "Laptop boots to a BitLocker recovery screen asking for the recovery key",
    "profile": "User gets a temporary profile at sign-in and her desktop is empty",
    "macos": "MacBook keeps asking for the login keychain password after the password change",
    "linux-ssh": "SSH to the build server fails with Permission denied (publickey)",
    "onedrive": "OneDrive shows sync pending on the Finance folder for two days",
    "office-licensing": "Excel shows Unlicensed Product and editing is disabled",
    "display-dock": "Both external monitors on the docking station show no signal",
    "mobile-mail": "Work email stopped syncing in the iPhone Mail app",
    "teams-client": "Teams won't open on her laptop, just a white screen then it closes",
    "group-policy": "The new GPO for the wallpaper is not applying, gpresult does not list it",
    "time-sync": "Sign-in fails with 'the time difference between client and server is too great'",
    "server-down": "The intranet shows HTTP Error 503. The service is unavailable",
    "new-starter": "New starter in sales on Monday: needs an account, licence and laptop",
    "office-apps": "Excel crashes every time she opens a workbook since yesterday's update",
    "desk-phone": "The Yealink desk phone at reception has no dial tone, says Registration failed",
    "file-restore": "She accidentally deleted the Contracts folder on the file share this morning",
    "office-network": "The internet is down in the whole office since the power cut",
}


@pytest.fixture(scope="module")
def engine() -> OfflineAssistant:
    return OfflineAssistant()


def first_step_titles(engine: OfflineAssistant, family_id: str, count: int) -> list[str]:
    """With no evidence: the family's checks in file order, its fixes after them; a Mac's
    own commands left out while the OS is unknown (the commands assume Windows)."""
    steps = default_knowledge().by_id[family_id].steps
    if any(step.os == "windows" for step in steps):
        steps = [step for step in steps if not (step.command and step.os == "macos")]
    fix_ids = {s for c in default_knowledge().by_id[family_id].causes for s in c.fixed_by}
    ordered = sorted(steps, key=lambda step: step.id in fix_ids)
    return [step.title for step in ordered[:count]]


def all_steps_as(family_id: str, status: str) -> tuple[TriedStep, ...]:
    return tuple(
        TriedStep(title=step.title, status=status)
        for step in default_knowledge().by_id[family_id].steps
    )


# ------------------------------------------------------------------------ knowledge


def test_bundled_knowledge_has_at_least_15_problem_families() -> None:
    knowledge = load_knowledge()
    assert len(knowledge.matchable) >= 15
    assert knowledge.fallback.id == "triage"
    for family in knowledge.families:
        assert 2 <= len(family.questions) <= 4, family.id
        assert len(family.steps) >= 3, family.id
        assert family.causes, family.id
        for step in family.steps:
            assert step.title and step.detail, step.id
            if step.command:
                assert step.shell in VALID_SHELLS, step.id


# What changes a machine or a directory. A check only reads (a malware scan counts as a
# read: it looks, and what it finds is reported before anything is removed).
_CHANGES = re.compile(
    r"\b(?:Start|Set|Restart|Enable|Disable|Remove|Reset|Clear|Stop|New|Add|Unlock|Update"
    r"|Install|Uninstall|Invoke|Repair|Suspend|Resume|Register|Unregister|Move|Rename)-(?!MpScan)"
    r"\w+|gpupdate|/flushdns|/registerdns|/release|/renew|/scannow|restorehealth"
    r"|systemctl (?:restart|start|stop)|launchctl (?:kickstart|unload|load)|killall"
    r"|\bnet (?:stop|start)|\bsc (?:stop|start)",
    re.IGNORECASE,
)


def test_a_check_only_reads() -> None:
    changing = [
        step.id
        for family in default_knowledge().families
        for step in family.steps
        if step.kind == "check"
        and (_CHANGES.search(step.command) or DESTRUCTIVE.search(step.command))
    ]
    assert changing == []


def test_every_family_has_a_realistic_test_problem() -> None:
    assert set(PROBLEMS) == {family.id for family in default_knowledge().matchable}


def test_default_knowledge_is_loaded_once() -> None:
    assert default_knowledge() is default_knowledge()


# ------------------------------------------------------------------------- matching


@pytest.mark.parametrize(("family_id", "problem"), sorted(PROBLEMS.items()))
def test_problem_statement_matches_its_family_and_proposes_steps(
    engine: OfflineAssistant, family_id: str, problem: str
) -> None:
    conversation = Conversation(problem=problem)

    assert engine.match(conversation) == family_id
    reply = engine.reply(conversation)

    assert reply.engine == "offline"
    assert len(reply.steps) >= 3
    assert all(step.title.strip() for step in reply.steps)
    family = default_knowledge().by_id[family_id]
    titles = [s.title for s in reply.steps]
    assert len(set(titles)) == len(titles)
    assert set(titles) <= {step.title for step in family.steps}
    # The first step checks the cause the reply names as most likely, when the problem
    # statement points at one; with no evidence either way the family's own order stands.
    the_plan = engine.plan(conversation)
    lead = the_plan.lead
    if lead.support and (lead.cause.checked_by or lead.cause.fixed_by):
        own = {*lead.cause.checked_by, *lead.cause.fixed_by}
        assert titles[0] in {s.title for s in family.steps if s.id in own}
    elif not any(r.facts for r in the_plan.causes):
        assert titles == first_step_titles(engine, family_id, len(titles))
    assert any(step.command for step in reply.steps), "expected at least one copyable command"
    for step in reply.steps:
        assert bool(step.command) == bool(step.shell)
        if step.shell:
            assert step.shell in VALID_SHELLS
    assert "?" in reply.text  # asks at least one diagnostic question


def test_outlook_migration_prompt_is_a_strong_match_with_auth_steps(
    engine: OfflineAssistant,
) -> None:
    conversation = Conversation(problem=PROBLEMS["outlook"])
    result = engine.classify(conversation)
    assert (result.family_id, result.strength) == ("outlook", "strong")

    steps = default_knowledge().by_id["outlook"].steps
    titles = " ".join(step.title for step in steps).casefold()
    for topic in ("credential manager", "modern authentication", "new outlook profile"):
        assert topic in titles
    assert any("Identity" in step.command for step in steps)  # the ADAL registry key


def test_unmatched_problem_gets_generic_triage(engine: OfflineAssistant) -> None:
    conversation = Conversation(problem="Something is weird with Karen's thing, please help")

    assert engine.match(conversation) is None
    reply = engine.reply(conversation)

    triage = default_knowledge().fallback
    assert [s.title for s in reply.steps] == [s.title for s in triage.steps[:3]]
    text = reply.text.casefold()
    for scope in ("who is affected", "since when", "what changed", "error text"):
        assert scope in text
    assert engine.assess(conversation).confidence == "low"


def test_generic_triage_does_not_repeat_tried_steps(engine: OfflineAssistant) -> None:
    triage = default_knowledge().fallback
    tasks = (TriedStep(title=triage.steps[0].title, status="done"),)
    reply = engine.reply(Conversation(problem="help please", tasks=tasks))

    assert triage.steps[0].title not in [s.title for s in reply.steps]
    assert reply.steps[0].title == triage.steps[1].title


def test_a_later_correcting_message_shifts_the_family(engine: OfflineAssistant) -> None:
    problem = "User can't open the S: mapped drive on the file server"
    before = Conversation(problem=problem)
    after = Conversation(
        problem=problem,
        messages=(
            ChatLine("user", "It worked fine last week."),
            ChatLine("assistant", engine.reply(before).text),
            ChatLine("user", "Actually it's only when she's on the VPN from home."),
        ),
    )

    assert engine.match(before) == "mapped-drive"
    assert engine.match(after) == "vpn"
    reply = engine.reply(after)
    # A share that fails only over the VPN could be either: the reply leads with the VPN
    # and asks, rather than claiming it.
    assert reply.text.index("**VPN connection**") < reply.text.index("**Mapped drives")
    assert reply.family == "vpn"
    assert reply.steps[0].title in {s.title for s in default_knowledge().by_id["vpn"].steps}


def test_a_passing_mention_does_not_outweigh_the_problem(engine: OfflineAssistant) -> None:
    conversation = Conversation(
        problem="User can't open the S: mapped drive on the file server",
        messages=(ChatLine("user", "She is in the office, not on VPN today."),),
    )
    assert engine.match(conversation) == "mapped-drive"


def test_problem_text_weighs_more_than_a_chat_message(engine: OfflineAssistant) -> None:
    conversation = Conversation(
        problem="Printer on floor 2 shows offline",
        messages=(ChatLine("user", "Also the laptop feels slow"),),
    )
    assert engine.match(conversation) == "printer"


def test_classification_lists_scores_best_first() -> None:
    result = classify(Conversation(problem=PROBLEMS["dns"]))
    scores = [score for _, score in result.scores]
    assert scores == sorted(scores, reverse=True)
    assert result.scores[0] == (result.family_id, result.score)


# -------------------------------------------------------------- already-tried steps


def test_failed_task_is_not_reproposed_and_is_acknowledged(engine: OfflineAssistant) -> None:
    dns = default_knowledge().by_id["dns"]
    failed = dns.steps[0]
    conversation = Conversation(
        problem=PROBLEMS["dns"],
        tasks=(TriedStep(title=failed.title, status="failed", outcome="Points at 10.0.0.10"),),
    )

    reply = engine.reply(conversation)

    assert failed.title not in [step.title for step in reply.steps]
    expected = [t for t in first_step_titles(engine, "dns", 99) if t != failed.title][:3]
    assert [step.title for step in reply.steps] == expected
    assert f"Since *{failed.title}* failed" in reply.text
    assert "Points at 10.0.0.10" in reply.text
    # The suggested next cause is not the one the failed step was checking.
    checked_by_failed = {c.title for c in dns.causes if failed.id in c.checked_by}
    assert not any(f"Next most likely: **{title}**" in reply.text for title in checked_by_failed)


def test_failure_is_acknowledged_only_once(engine: OfflineAssistant) -> None:
    dns = default_knowledge().by_id["dns"]
    tasks = (TriedStep(title=dns.steps[0].title, status="failed"),)
    first = engine.reply(Conversation(problem=PROBLEMS["dns"], tasks=tasks))
    later = engine.reply(
        Conversation(
            problem=PROBLEMS["dns"],
            tasks=tasks,
            messages=(ChatLine("assistant", first.text), ChatLine("user", "ok, next?")),
        )
    )
    assert "Since" in first.text
    assert "Since" not in later.text


def test_a_failed_task_without_a_title_is_not_acknowledged(engine: OfflineAssistant) -> None:
    tasks = (TriedStep(title="  ...  ", status="failed"),)
    reply = engine.reply(Conversation(problem=PROBLEMS["dns"], tasks=tasks))
    assert "Since" not in reply.text
    assert "****" not in reply.text and "** failed" not in reply.text


@pytest.mark.parametrize("status", ["done", "skipped", "failed", "todo", "doing"])
def test_steps_in_the_lane_or_finished_are_not_reproposed(
    engine: OfflineAssistant, status: str
) -> None:
    printer = default_knowledge().by_id["printer"]
    # Titles are compared casefolded and without punctuation.
    typed = printer.steps[1].title.upper() + "!!"
    conversation = Conversation(
        problem="Help needed with the HP printer on the 2nd floor",  # no evidence either way
        tasks=(TriedStep(title=typed, status=status),),
    )

    titles = [step.title for step in engine.reply(conversation).steps]

    assert printer.steps[1].title not in titles
    in_order = first_step_titles(engine, "printer", 99)
    # A step still waiting in the lane takes one of the three places.
    room = 2 if status in {"todo", "doing"} else 3
    assert titles == [t for t in in_order if t != printer.steps[1].title][:room]


@pytest.mark.parametrize(
    ("said", "reads"),
    [
        ("The spooler service is stopped on PRN01", "supports"),  # a qualifier inside
        ("Jobs stuck in the print queue since nine", "supports"),
        ("The print spooler was never stopped", None),  # a negation is never skipped
        ("The spooler or the service stopped", None),  # nor a contrast
    ],
)
def test_a_fact_reads_through_one_qualifier_but_never_a_negation(
    engine: OfflineAssistant, said: str, reads: str | None
) -> None:
    the_plan = engine.plan(
        Conversation(
            problem="Nothing prints on the 2nd floor HP printer",
            messages=(ChatLine("user", said),),
        )
    )
    spooler = next(c for c in the_plan.causes if c.cause.id == "printer.spooler")
    assert [f.direction for f in spooler.facts if f.quote == said] == ([reads] if reads else [])


def first_reply_in_the_lane(engine: OfflineAssistant, problem: str):
    """FlowPilot's first reply to ``problem`` and its steps as the lane holds them (todo)."""
    first = engine.reply(Conversation(problem=problem))
    return first, [TriedStep(title=s.title, status="todo", command=s.command) for s in first.steps]


def test_a_lockout_source_found_points_at_the_stale_device_and_its_waiting_fixes(
    engine: OfflineAssistant,
) -> None:
    problem = "User account keeps getting locked out every morning"
    first, lane = first_reply_in_the_lane(engine, problem)
    assert lane[0].title == "Find the lockout source (event 4740 on the PDC emulator)"
    lane[0] = replace(lane[0], status="done", outcome="4740 shows source PC-OLD-22")
    reply = engine.reply(
        Conversation(
            problem=problem, messages=(ChatLine("assistant", first.text),), tasks=tuple(lane)
        )
    )
    assert "That points to **A device or service still uses the old password**" in reply.text
    # Its fixes wait in the lane: no check is added after the answer is known.
    assert reply.steps == ()
    assert "already in the lane" in reply.text


def test_with_the_cause_confirmed_and_its_fixes_done_it_asks_whether_it_works(
    engine: OfflineAssistant,
) -> None:
    problem = "m.chen keeps getting locked out every morning"
    first, lane = first_reply_in_the_lane(engine, problem)
    outcomes = {
        "Find the lockout source (event 4740 on the PDC emulator)": "4740 shows source BD-RECEP-03",
        "Unlock the account": "Unlocked",
        "Update the old password on phones, saved credentials and services": (
            "Logged her off BD-RECEP-03 and cleared the saved credentials"
        ),
    }
    lane = tuple(replace(t, status="done", outcome=outcomes[t.title]) for t in lane)
    history = (ChatLine("assistant", first.text),)
    reply = engine.reply(Conversation(problem=problem, messages=history, tasks=lane))
    assert "is done. Does it work now?" in reply.text
    assert reply.steps == ()  # no checks listed under "Fix" once the answer is known
    # "LockedOut False" after the unlock is no evidence against the cause it fixed.
    checked = (
        *lane,
        TriedStep("Check the account's lockout and password state", "done", "LockedOut False"),
    )
    still = engine.plan(Conversation(problem=problem, messages=history, tasks=checked))
    assert still.lead.cause.id == "lockout.stale-device"
    # An hour without a lockout is the problem gone: the close-out.
    later = engine.reply(
        Conversation(
            problem=problem,
            messages=(*history, ChatLine("user", "1 hr later no new lockouts, badlogoncount 0")),
            tasks=lane,
        )
    )
    assert later.stage == "closeout"


def test_on_premises_only_holds_back_the_cloud_directorys_steps(engine: OfflineAssistant) -> None:
    problem = "m.chen keeps getting locked out every morning"
    said = "It's on prem AD only btw, no Entra"
    the_plan = engine.plan(Conversation(problem=problem, messages=(ChatLine("user", said),)))
    proposable = [s.title for s in the_plan.untouched]
    assert "Check Entra ID sign-in logs and smart lockout" not in proposable
    assert "For hybrid accounts: check password sync and writeback" not in proposable
    assert "Find the lockout source (event 4740 on the PDC emulator)" in proposable


def test_what_a_check_found_in_the_new_families_is_read(engine: OfflineAssistant) -> None:
    def lead_after(problem: str, step: str, outcome: str) -> str:
        tasks = (TriedStep(title=step, status="done", outcome=outcome),)
        return engine.plan(Conversation(problem=problem, tasks=tasks)).lead.cause.id

    assert (
        lead_after(
            "The internet is down in the whole office",
            "Check the provider's status page for the line",
            "ISP status page: fibre outage in our area, ETA 13:00",
        )
        == "net.provider"
    )
    assert (
        lead_after(
            "HR folder on the S: drive is gone, someone deleted it",
            "Look for previous versions of the folder on the share",
            "The folder is in the 07:00 previous versions",
        )
        == "restore.deleted-on-share"
    )
    excel = "Excel crashes every time she opens the Q3 forecast workbook. Other workbooks seem ok"
    assert engine.plan(Conversation(problem=excel)).lead.cause.id == "apps.damaged-file"


def test_a_question_is_answered_from_a_steps_detail_or_honestly_not(
    engine: OfflineAssistant,
) -> None:
    phone = "The Yealink desk phone at reception has no dial tone, says Registration failed"
    answered = reply_to(engine, phone, "where do i get the sip pasword from?")
    assert (
        "On \u201cwhere do i get the sip pasword from?\u201d: *Re-enter the SIP account or "
        "re-provision the phone* says"
    ) in answered.text
    fan = reply_to(engine, "Laptop fan is very loud", "shud i update bios or is the fan dying?")
    assert "I can't answer \u201cshud i update bios or is the fan dying?\u201d" in fan.text
    # "What next?" and "is it fixed?" are what the reply itself answers.
    for said in ("ok, anything else?", "so its fixed i think?"):
        reply = reply_to(engine, phone, said)
        assert "I can't answer" not in reply.text and "\u201d: *" not in reply.text


def test_the_close_out_does_not_ask_to_confirm_what_the_user_confirmed(
    engine: OfflineAssistant,
) -> None:
    problem = "Outlook keeps asking for a password after the Microsoft 365 migration"

    def closeout(said: str):
        return engine.reply(
            Conversation(
                problem=problem, customer="Acme HQ, reception", messages=(ChatLine("user", said),)
            )
        )

    fixed = closeout("Cleared the cached credentials and it works now")
    confirm = next(s for s in fixed.steps if s.title == "Confirm with the user that it works")
    assert confirm.detail.startswith("Have the user (Acme HQ, reception) repeat what failed")
    confirmed = closeout("Works now, the user confirmed she can send and receive")
    assert confirmed.stage == "closeout"
    assert "Confirm with the user that it works" not in [s.title for s in confirmed.steps]


def test_an_initial_dot_surname_fills_the_user_placeholder(engine: OfflineAssistant) -> None:
    reply = reply_to(engine, "m.chen keeps getting locked out every morning")
    assert "Unlock-ADAccount -Identity m.chen" in [s.command for s in reply.steps]
    # Never a host, file or domain name.
    for text in ("see hr.acme.com", "open report.pdf", "e.g. the printer"):
        assert session_values("", (text,)).get("user", "") == ""


def test_outside_every_family_a_laptop_part_gets_its_diagnostics_not_a_repair(
    engine: OfflineAssistant,
) -> None:
    fan = reply_to(engine, "Laptop fan is really loud all the time and it gets hot")
    assert fan.stage == "triage"
    assert fan.steps[0].title == "Run the maker's hardware diagnostics"
    # No generic fix before a check has confirmed its cause.
    assert "Book the repair under warranty, with a loan device meanwhile" not in [
        s.title for s in fan.steps
    ]
    battery = reply_to(engine, "Battery drains in 2 hours")
    assert "Create the battery report" in [s.title for s in battery.steps]
    # "Stopped working" is the problem, not a device said to work.
    mouse = engine.plan(Conversation(problem="USB mouse stopped working"))
    hardware = next(c for c in mouse.causes if c.cause.id == "triage.hardware")
    assert [f.direction for f in hardware.facts] == ["supports"]


def test_the_lane_does_not_grow_while_its_steps_wait(engine: OfflineAssistant) -> None:
    problem = "Nothing prints on the 2nd floor HP printer"
    first = engine.reply(Conversation(problem=problem))
    assert "Clear stuck jobs and restart the Print Spooler" not in [s.title for s in first.steps]
    waiting = tuple(TriedStep(title=s.title, status="todo", command=s.command) for s in first.steps)
    history = (ChatLine("assistant", first.text),)
    # Nothing new said: the reply points at the waiting steps and adds none.
    idle = engine.reply(
        Conversation(
            problem=problem,
            messages=(*history, ChatLine("user", "ok, anything else?")),
            tasks=waiting,
        )
    )
    assert idle.steps == ()
    assert "already in the lane" in idle.text
    # One done: one place is free again.
    one_done = (replace(waiting[0], status="done", outcome="Nothing found"), *waiting[1:])
    later = engine.reply(Conversation(problem=problem, messages=history, tasks=one_done))
    assert len(later.steps) == 1
    # News that favours a step not in the lane gets it in, even with the lane full.
    news = engine.reply(
        Conversation(
            problem=problem,
            messages=(*history, ChatLine("user", "The spooler service is stopped on PRN01")),
            tasks=waiting,
        )
    )
    assert [step.title for step in news.steps] == ["Clear stuck jobs and restart the Print Spooler"]


def test_a_task_with_the_same_command_counts_as_the_same_step(engine: OfflineAssistant) -> None:
    dns = default_knowledge().by_id["dns"]
    renamed = TriedStep(title="Ran flush", status="done", command="  IPCONFIG   /flushdns ")
    reply = engine.reply(Conversation(problem=PROBLEMS["dns"], tasks=(renamed,)))
    flush = next(step for step in dns.steps if step.command == "ipconfig /flushdns")
    assert flush.title not in [step.title for step in reply.steps]


def test_normalize_strips_case_and_punctuation() -> None:
    assert normalize("  Flush the DNS-cache!! ") == normalize("flush the dns cache")
    assert normalize("Can't print") == "cant print"


def test_exhausted_family_recommends_escalation_with_summary(engine: OfflineAssistant) -> None:
    tasks = all_steps_as("vpn", "failed")
    conversation = Conversation(problem=PROBLEMS["vpn"], customer="Acme Ltd", tasks=tasks)

    reply = engine.reply(conversation)

    assert reply.steps == ()
    assert "has been tried and the problem is still open" in reply.text
    assert "escalat" in reply.text.casefold()
    assert "Summary for the handoff" in reply.text
    assert f"{len(tasks)} steps tried ({len(tasks)} failed)" in reply.text
    assert "Acme Ltd" in reply.text
    # The cause the problem statement still points at is named with its evidence.
    assert "Most likely remaining cause: **The local network blocks the VPN**" in reply.text
    assert "\u201csays gateway unreachable\u201d, the problem" in reply.text


def test_only_lane_steps_left_asks_to_finish_them(engine: OfflineAssistant) -> None:
    steps = default_knowledge().by_id["wifi"].steps
    tasks = (
        *(TriedStep(title=step.title, status="done") for step in steps[:-1]),
        TriedStep(title=steps[-1].title, status="todo"),
    )
    reply = engine.reply(Conversation(problem=PROBLEMS["wifi"], tasks=tasks))

    assert reply.steps == ()
    assert "already in the lane" in reply.text
    assert steps[-1].title in reply.text


# ------------------------------------------------------------------------ questions


def test_first_reply_asks_at_most_two_questions(engine: OfflineAssistant) -> None:
    reply = engine.reply(Conversation(problem=PROBLEMS["rdp"]))
    questions = [line for line in reply.text.splitlines() if line.startswith("- ")]
    assert 1 <= len(questions) <= 2


def test_questions_already_answered_are_not_asked(engine: OfflineAssistant) -> None:
    wifi = default_knowledge().by_id["wifi"]
    unanswered = engine.reply(Conversation(problem="Laptop has Wi-Fi trouble"))
    answered = engine.reply(
        Conversation(problem="Laptop has Wi-Fi trouble; other devices and my phone work fine")
    )
    assert wifi.questions[0].text in unanswered.text
    assert wifi.questions[0].text not in answered.text
    assert wifi.questions[1].text in answered.text


def test_a_task_outcome_can_answer_a_question(engine: OfflineAssistant) -> None:
    owa_question = default_knowledge().by_id["outlook"].questions[1]
    problem = "Outlook keeps prompting for credentials"
    tasks = (TriedStep(title="Tried the web version", status="done", outcome="OWA works"),)

    assert owa_question.text in engine.reply(Conversation(problem=problem)).text
    assert owa_question.text not in engine.reply(Conversation(problem=problem, tasks=tasks)).text


def test_a_question_asked_and_replied_to_is_not_asked_again(engine: OfflineAssistant) -> None:
    first = engine.reply(Conversation(problem=PROBLEMS["backup"]))
    asked = [line[2:] for line in first.text.splitlines() if line.startswith("- ")]
    later = engine.reply(
        Conversation(
            problem=PROBLEMS["backup"],
            messages=(ChatLine("assistant", first.text), ChatLine("user", "no idea, sorry")),
        )
    )
    assert asked
    assert not any(question in later.text for question in asked)


# ---------------------------------------------------------------- determinism/safety


def long_session(problem: str) -> Conversation:
    lines = []
    for turn in range(25):
        lines.append(ChatLine("user", f"Update {turn}: still failing on the laptop, tried again"))
        lines.append(ChatLine("assistant", f"Thanks. Please check step {turn} and report back."))
    dns = default_knowledge().by_id["dns"]
    tasks = (
        TriedStep(title=dns.steps[0].title, status="done"),
        TriedStep(title=dns.steps[1].title, status="failed", outcome="NXDOMAIN"),
        TriedStep(title=dns.steps[2].title, status="todo"),
    )
    return Conversation(problem=problem, messages=tuple(lines), tasks=tasks)


def test_same_input_gives_same_output() -> None:
    conversation = long_session(PROBLEMS["dns"])
    fresh_engine = OfflineAssistant(load_knowledge())  # no shared caches

    first = OfflineAssistant().reply(conversation)
    assert OfflineAssistant().reply(conversation) == first
    assert fresh_engine.reply(conversation) == first
    assert (
        fresh_engine.assess(conversation).as_dict()
        == OfflineAssistant().assess(conversation).as_dict()
    )


@pytest.mark.parametrize(
    "problem", [PROBLEMS["dns"] + " <script>alert(1)</script>", "<img src=x onerror=alert(1)>"]
)
def test_output_contains_no_raw_html(engine: OfflineAssistant, problem: str) -> None:
    evil = "<script>alert('x')</script><b>bold</b>"
    knowledge = default_knowledge()
    family = knowledge.by_id[engine.match(Conversation(problem=problem)) or "triage"]
    tasks = (
        TriedStep(title=f"{family.steps[0].title} {evil}", status="failed", outcome=evil),
        *(TriedStep(title=step.title, status="failed", outcome=evil) for step in family.steps),
    )
    conversation = Conversation(
        problem=problem,
        customer=evil,
        device=evil,
        messages=(ChatLine("user", evil), ChatLine("user", "<iframe src=//evil>")),
        tasks=tasks,
        escalation_reason=evil,
        escalated_by=evil,
        urgency=evil,
    )

    reply = engine.reply(conversation)
    assessment = engine.assess(conversation)

    assert "Since *" in reply.text  # the evil failed task was echoed, safely
    assert "<" not in reply.text and ">" not in reply.text
    assert "<" not in assessment.summary
    for cause in assessment.causes:
        assert "<" not in cause.title + cause.why
    for step in reply.steps + assessment.next_steps:
        assert "<" not in step.title + step.detail


untrusted_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80
) | st.sampled_from(["<script>alert(1)</script>", "<b>x</b>", "a < b > c", "<!-- x -->"])


@settings(max_examples=150, deadline=None)
@given(
    problem=untrusted_text,
    chat=st.lists(st.tuples(st.sampled_from(["user", "assistant"]), untrusted_text), max_size=6),
    tasks=st.lists(
        st.tuples(untrusted_text, st.sampled_from(["todo", "doing", "done", "failed", "skipped"])),
        max_size=6,
    ),
)
def test_any_untrusted_text_gives_a_safe_reply(
    problem: str, chat: list[tuple[str, str]], tasks: list[tuple[str, str]]
) -> None:
    conversation = Conversation(
        problem=problem,
        messages=tuple(ChatLine(role, text) for role, text in chat),
        tasks=tuple(
            TriedStep(title=title, status=status, outcome=title) for title, status in tasks
        ),
        escalation_reason=problem,
    )
    engine = OfflineAssistant()

    reply = engine.reply(conversation)
    assessment = engine.assess(conversation)

    assert reply.text.strip()
    assert "<" not in reply.text  # ">" may come from the knowledge base ("File > Options")
    assert "<" not in assessment.summary
    assert assessment.confidence in {"low", "medium", "high"}


def test_knowledge_texts_contain_no_html() -> None:
    for family in default_knowledge().families:
        texts = [family.title, *(q.text for q in family.questions)]
        texts += [s.title + s.detail for s in family.steps]
        texts += [c.title + c.why for c in family.causes]
        assert not any("<" in text for text in texts), family.id


# --------------------------------------------------------------------------- assess


def test_assess_summarises_the_session(engine: OfflineAssistant) -> None:
    outlook = default_knowledge().by_id["outlook"]
    tasks = (
        TriedStep(title=outlook.steps[0].title, status="done", outcome="OWA works"),
        TriedStep(title=outlook.steps[1].title, status="failed", outcome="Still prompts"),
        TriedStep(title=outlook.steps[2].title, status="failed"),
        TriedStep(title=outlook.steps[3].title, status="skipped"),
        TriedStep(title=outlook.steps[4].title, status="todo"),
    )
    conversation = Conversation(
        problem=PROBLEMS["outlook"],
        tasks=tasks,
        escalation_reason="Need an Exchange admin to check the SCP",
        urgency="high",
        escalated_by="Sam",
    )

    assessment = engine.assess(conversation)

    assert assessment.engine == "offline"
    assert engine.classify(conversation).family_id == "outlook"
    assert PROBLEMS["outlook"] in assessment.summary
    assert outlook.title in assessment.summary
    assert "3 steps tried (2 failed, 1 done), 1 skipped" in assessment.summary
    assert "Need an Exchange admin to check the SCP" in assessment.summary
    assert [(t.title, t.status, t.outcome) for t in assessment.tried] == [
        (t.title, t.status, t.outcome) for t in tasks[:4]
    ]
    assert [t.outcome for t in assessment.tried[:2]] == ["OWA works", "Still prompts"]

    next_titles = [step.title for step in assessment.next_steps]
    assert 1 <= len(next_titles) <= 5  # steps that only check contradicted causes are left out
    assert outlook.steps[4].title in next_titles  # todo: still untried
    assert not {task.title for task in tasks[:4]} & set(next_titles)

    # Both checks for the cached-credentials cause were carried out, so it sinks.
    stale = next(c for c in outlook.causes if c.id == "outlook.cached-credentials")
    titles = [cause.title for cause in assessment.causes]
    assert titles[0] != stale.title
    assert titles.index(stale.title) > titles.index(outlook.causes[1].title)
    assert "Checked without finding it" in assessment.causes[titles.index(stale.title)].why
    assert assessment.as_dict()["confidence"] == assessment.confidence


def test_assess_confidence_levels(engine: OfflineAssistant) -> None:
    exhausted = Conversation(problem=PROBLEMS["backup"], tasks=all_steps_as("backup", "done"))
    weak = Conversation(problem="the share is weird")

    tunnel_up = Conversation(
        problem="Remote staff connect to the VPN fine, but internal sites do not load",
        escalation_reason="The tunnel is up but internal names do not resolve.",
    )

    assert engine.assess(tunnel_up).confidence == "high"
    assert engine.assess(tunnel_up).causes[0].title == "Split tunnel routes or DNS are wrong"
    assert engine.classify(weak).strength == "weak"
    assert engine.assess(weak).confidence == "low"
    assessment = engine.assess(exhausted)
    assert assessment.confidence == "medium"
    assert assessment.next_steps == ()
    assert "Every step in the playbook has been tried" in assessment.summary


def test_assess_accepts_a_timeout(engine: OfflineAssistant) -> None:
    assessment = engine.assess(Conversation(problem=PROBLEMS["mfa"]), timeout=0.01)
    assert assessment.next_steps


# ----------------------------------------------------------------------- validation


VALID_FAMILY = """
id = "widgets"
title = "Widgets"

[match.keywords]
"widget" = 5

[[questions]]
id = "widgets.q"
text = "Which widget?"

[[steps]]
id = "widgets.restart"
title = "Restart the widget"
detail = "Turn it off and on."
command = "Restart-Service Widget"
shell = "powershell"

[[causes]]
id = "widgets.stuck"
title = "Stuck widget"
why = "They get stuck."
checked_by = ["widgets.restart"]
"""

FALLBACK_FAMILY = """
id = "triage"
title = "Triage"
fallback = true

[[questions]]
id = "triage.q"
text = "Who is affected?"

[[steps]]
id = "triage.reproduce"
title = "Reproduce it"
detail = "Write down the steps."

[[causes]]
id = "triage.change"
title = "A recent change"
why = "Things break after changes."
"""


def write_knowledge(folder: Path, widgets: str) -> Path:
    (folder / "triage.toml").write_text(FALLBACK_FAMILY)
    (folder / "widgets.toml").write_text(widgets)
    return folder


def test_a_minimal_knowledge_folder_loads_and_drives_the_engine(tmp_path: Path) -> None:
    knowledge = load_knowledge(write_knowledge(tmp_path, VALID_FAMILY))
    engine = OfflineAssistant(knowledge)

    assert engine.match(Conversation(problem="The widgets are broken")) == "widgets"
    assert engine.reply(Conversation(problem="widget down")).steps[0].shell == "powershell"


GADGETS = """
id = "gadgets"
title = "Gadgets"

[match.keywords]
"gadget" = 6

[[questions]]
id = "gadgets.q"
text = "Which gadget?"

[[steps]]
id = "gadgets.power"
title = "Check the gadget's power supply"
detail = "Measure it."

[[steps]]
id = "gadgets.firmware"
title = "Update the gadget firmware"
detail = "From the vendor site."

[[steps]]
id = "gadgets.cable"
title = "Swap the gadget cable"
detail = "Use a known good one."

[[steps]]
id = "gadgets.log"
title = "Read the gadget log"
detail = "It says what went wrong."

[[causes]]
id = "gadgets.power"
title = "Power supply failing"
why = "Old supplies sag."
checked_by = ["gadgets.power"]
supported_if = ["turns off by itself", "no lights"]
ruled_out_if = ["lights are on", "stays on"]

[[causes]]
id = "gadgets.firmware"
title = "Firmware bug"
why = "Some versions crash."
checked_by = ["gadgets.firmware"]
supported_if = ["after the update", "version 2.1"]

[[causes]]
id = "gadgets.cable"
title = "Bad cable"
why = "Cables wear out."
checked_by = ["gadgets.cable"]
"""


@pytest.fixture
def gadgets(tmp_path: Path) -> OfflineAssistant:
    return OfflineAssistant(load_knowledge(write_knowledge(tmp_path, GADGETS)))


def causes_of(assessment) -> list[str]:
    return [cause.title for cause in assessment.causes]


def steps_of(result) -> list[str]:
    return [step.title for step in result.next_steps]


def test_without_evidence_the_file_order_stands_and_confidence_is_medium(gadgets) -> None:
    assessment = gadgets.assess(Conversation(problem="The gadget is broken"))

    assert causes_of(assessment) == ["Power supply failing", "Firmware bug", "Bad cable"]
    assert steps_of(assessment)[:3] == [
        "Check the gadget's power supply",
        "Update the gadget firmware",
        "Swap the gadget cable",
    ]
    assert "reported" not in " ".join(cause.why for cause in assessment.causes)
    # Sure of the problem family, not of the cause.
    assert assessment.confidence == "medium"


def test_reported_facts_raise_a_cause_its_check_comes_first_and_the_why_quotes_them(
    gadgets,
) -> None:
    conversation = Conversation(
        problem="The gadget is broken since Monday",
        escalation_reason="It started right after the update to version 2.1.",
    )
    assessment = gadgets.assess(conversation)

    assert causes_of(assessment)[0] == "Firmware bug"
    # The fact is quoted as written, with where it came from.
    assert assessment.causes[0].why == (
        "Some versions crash. Fits \u201cIt started right after the update to version 2.1.\u201d, "
        "the escalation reason."
    )
    assert assessment.fact.model_dump(exclude_none=True) == {
        "quote": "It started right after the update to version 2.1.",
        "source": "the escalation reason",
        "cause": "Firmware bug",
        "kind": "reason",
    }
    assert steps_of(assessment)[0] == "Update the gadget firmware"
    assert assessment.confidence == "high"

    reply = gadgets.reply(conversation)
    assert "Most likely cause: **Firmware bug**" in reply.text
    assert (
        "It fits the escalation reason: "
        "\u201cIt started right after the update to version 2.1.\u201d"
    ) in reply.text
    assert reply.steps[0].title == "Update the gadget firmware"


def test_facts_against_a_cause_sink_it_and_its_check_is_not_proposed(gadgets) -> None:
    conversation = Conversation(
        problem="The gadget is broken",
        tasks=(TriedStep(title="Read the gadget log", status="done", outcome="Lights are on."),),
    )
    assessment = gadgets.assess(conversation)

    assert causes_of(assessment) == ["Firmware bug", "Bad cable", "Power supply failing"]
    assert assessment.causes[-1].why.endswith(
        "Against it: \u201cLights are on.\u201d, the outcome of \u201cRead the gadget log\u201d."
    )
    assert steps_of(assessment) == ["Update the gadget firmware", "Swap the gadget cable"]
    # Something pointed away from a cause, nothing pointed at one.
    assert assessment.confidence == "medium"


def test_a_step_for_a_contradicted_cause_is_the_last_resort(gadgets) -> None:
    done = ("Update the gadget firmware", "Swap the gadget cable", "Read the gadget log")
    conversation = Conversation(
        problem="The gadget is broken and the lights are on",
        tasks=tuple(TriedStep(title, status="failed") for title in done),
    )
    assert steps_of(gadgets.assess(conversation)) == ["Check the gadget's power supply"]
    assert [s.title for s in gadgets.reply(conversation).steps] == [
        "Check the gadget's power supply"
    ]


def test_evidence_and_checks_weigh_together(gadgets) -> None:
    # The power supply was checked without fixing it, yet the gadget still turns off by
    # itself with no lights: the facts keep it ahead of causes nothing points at.
    conversation = Conversation(
        problem="The gadget turns off by itself and then shows no lights",
        tasks=(
            TriedStep(
                title="Check the gadget's power supply", status="done", outcome="12 V, steady"
            ),
        ),
    )
    assessment = gadgets.assess(conversation)

    assert causes_of(assessment)[0] == "Power supply failing"
    assert "Checked without finding it" in assessment.causes[0].why
    assert "Check the gadget's power supply" not in steps_of(assessment)


def test_a_finding_the_knowledge_cannot_read_counts_neither_way_and_is_said(engine) -> None:
    problem = "User account keeps getting locked out every morning"
    source = "Find the lockout source (event 4740 on the PDC emulator)"

    def after(outcome: str):
        tasks = (TriedStep(title=source, status="done", outcome=outcome),)
        return Conversation(problem=problem, tasks=tasks)

    unread = after("Found 23 events, all from 10.4.2.17")
    reply = engine.reply(unread)
    assert "Noted: *Find the lockout source" in reply.text
    assert "\u201cFound 23 events, all from 10.4.2.17\u201d" in reply.text
    assert "counts neither for nor against any" in reply.text
    assert not any(cause.checked for cause in engine.plan(unread).causes)
    # Said once: the next reply does not repeat it.
    again = replace(unread, messages=(ChatLine("assistant", reply.text),))
    assert "Noted:" not in engine.reply(again).text
    # "Nothing found" is a check that found nothing, not a finding.
    nothing = engine.plan(after("Nothing in the log for her account"))
    assert nothing.unread == ()
    assert any(cause.checked for cause in nothing.causes)


def test_only_what_people_reported_is_evidence(gadgets) -> None:
    # FlowPilot's own words are not facts about the problem.
    conversation = Conversation(
        problem="The gadget is broken",
        messages=(
            ChatLine(role="assistant", text="Did it start after the update to version 2.1?"),
            ChatLine(role="user", text="No idea, I just got here."),
        ),
    )
    assert causes_of(gadgets.assess(conversation))[0] == "Power supply failing"

    said = Conversation(
        problem="The gadget is broken",
        messages=(ChatLine(role="user", text="Yes, it started after the update."),),
    )
    assert causes_of(gadgets.assess(said))[0] == "Firmware bug"


@pytest.mark.parametrize(
    ("said", "lead"),
    [
        ("It has been dead after the update, not before.", "Firmware bug"),
        ("It was not after the update, it just died.", "Power supply failing"),
        ("Did it start after the update? No idea.", "Firmware bug"),
        ("No, it runs version 2.1 like the others.", "Firmware bug"),  # "No," is a clause
        ("The lights are not on.", "Power supply failing"),  # not "lights are on"
    ],
)
def test_a_negated_fact_is_no_evidence_for_its_cause(gadgets, said: str, lead: str) -> None:
    conversation = Conversation(
        problem="The gadget is broken", messages=(ChatLine(role="user", text=said),)
    )
    assessment = gadgets.assess(conversation)
    assert causes_of(assessment)[0] == lead
    assert not any("Fits" in cause.why for cause in assessment.causes if cause.title != lead)


@pytest.mark.parametrize(
    ("said", "ruled_out", "quote"),
    [
        (
            "It doesn't turn off by itself.",
            "Power supply failing",
            "It doesn't turn off by itself.",
        ),
        (
            "It was not after the update, it just died.",
            "Firmware bug",
            "It was not after the update",
        ),
    ],
)
def test_a_negated_fact_rules_its_cause_out(gadgets, said: str, ruled_out: str, quote: str) -> None:
    # "MTU is fine" is evidence against the MTU cause, never for it.
    assessment = gadgets.assess(
        Conversation(problem="The gadget is broken", messages=(ChatLine("user", said),))
    )
    assert causes_of(assessment)[-1] == ruled_out
    assert f"Against it: \u201c{quote}\u201d, the technician's message." in (
        assessment.causes[-1].why
    )


def test_a_check_whose_outcome_points_at_its_cause_confirms_it(gadgets) -> None:
    def after_power_check(outcome: str):
        return gadgets.assess(
            Conversation(
                problem="The gadget is broken",
                tasks=(
                    TriedStep("Check the gadget's power supply", status="done", outcome=outcome),
                ),
            )
        )

    ruled_out = after_power_check("Measured 12 V, steady.")  # nothing found
    assert causes_of(ruled_out)[-1] == "Power supply failing"
    assert "Checked without finding it" in ruled_out.causes[-1].why

    confirmed = after_power_check("It turns off by itself while measuring, no lights.")
    assert causes_of(confirmed)[0] == "Power supply failing"
    assert confirmed.causes[0].why.endswith(
        "Found by a check: \u201cIt turns off by itself while measuring\u201d, "
        "the outcome of \u201cCheck the gadget's power supply\u201d."
    )
    assert "Checked without finding it" not in confirmed.causes[0].why
    assert confirmed.confidence == "high"


def test_pasted_command_output_is_evidence_too(gadgets) -> None:
    conversation = Conversation(
        problem="The gadget is broken",
        tasks=(
            TriedStep("Read the gadget log", status="done", outcome="Version : 2.1\nUptime: 2h"),
        ),
    )
    assert causes_of(gadgets.assess(conversation))[0] == "Firmware bug"


@pytest.mark.parametrize("family_id", sorted(PROBLEMS))
def test_every_assessment_fits_the_handoff_screens_schema(engine, family_id) -> None:
    # Families may hold more causes and steps than a screen shows; the assessment lists
    # what the stored-assessment schema accepts, so an engine fallback is never refused.
    from escalations.assessment import MAX_CAUSES, MAX_NEXT_STEPS

    family = default_knowledge().by_id[family_id]
    assessment = engine.assess(Conversation(problem=PROBLEMS[family_id]))
    assert len(assessment.causes) == min(len(family.causes), MAX_CAUSES)
    assert len(assessment.next_steps) <= MAX_NEXT_STEPS


def test_someone_new_to_the_session_gets_the_whole_picture(gadgets) -> None:
    # Sam took the session over from Tess: his first message gets where it stands, with
    # the lead cause named again although FlowPilot named it to Tess before.
    conversation = Conversation(
        problem="The gadget is broken",
        messages=(
            ChatLine("user", "It started after the update, lights are on.", author="Tess"),
            ChatLine("assistant", "Most likely cause: **Firmware bug**.", author=""),
            ChatLine("user", "Handoff briefing: please analyse it.", author="Sam"),
        ),
        tasks=(TriedStep("Swap the gadget cable", status="failed", outcome="No change"),),
    )
    reply = gadgets.reply(conversation)

    assert reply.text.startswith("**Where this stands** (Gadgets): 1 step tried (1 failed).")
    assert "Most likely cause: **Firmware bug**. Some versions crash." in reply.text
    assert (
        "Unlikely given the evidence: **Power supply failing** "
        "(\u201clights are on.\u201d, Tess's message)." in reply.text
    )
    assert "Also possible" not in reply.text  # the cable was swapped without a change
    assert [step.title for step in reply.steps][0] == "Update the gadget firmware"

    # Tess writing again is the usual next turn, not a new picture.
    more = Conversation(
        problem=conversation.problem,
        messages=(*conversation.messages[:2], ChatLine("user", "Any news?", author="Tess")),
    )
    assert not gadgets.reply(more).text.startswith("**Where this stands**")


def test_a_failed_check_does_not_talk_the_reply_out_of_what_the_evidence_says(gadgets) -> None:
    conversation = Conversation(
        problem="The gadget died after the update to version 2.1",
        messages=(ChatLine("user", "Updating again failed too.", author="Tess"),),
        tasks=(TriedStep("Update the gadget firmware", status="failed", outcome="Same"),),
    )
    text = gadgets.reply(conversation).text
    assert "the evidence still points at **Firmware bug**" in text
    assert "Next most likely" not in text


def test_the_escalation_reason_helps_find_the_family(gadgets) -> None:
    vague = Conversation(problem="Something is off at reception")
    assert gadgets.classify(vague).family_id is None
    with_reason = Conversation(
        problem="Something is off at reception",
        escalation_reason="The gadget on the desk restarts every few minutes.",
    )
    assert gadgets.classify(with_reason).family_id == "gadgets"


def test_two_causes_with_equal_evidence_are_not_high_confidence(gadgets) -> None:
    conversation = Conversation(problem="The gadget turns off by itself after the update")
    assessment = gadgets.assess(conversation)

    assert causes_of(assessment)[:2] == ["Power supply failing", "Firmware bug"]
    assert assessment.confidence == "medium"


def test_a_weak_family_match_is_low_confidence(gadgets) -> None:
    # One passing mention of a gadget in a long message is a guess, not a diagnosis.
    conversation = Conversation(
        problem="Something is off", messages=(ChatLine("user", "a gadget"),)
    )
    assert gadgets.classify(conversation).strength == "weak"
    assert gadgets.assess(conversation).confidence == "low"


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (VALID_FAMILY.replace('title = "Widgets"\n', ""), "'title' is required"),
        (VALID_FAMILY.replace('shell = "powershell"', 'shell = "zsh"'), "shell 'zsh'"),
        (VALID_FAMILY.replace('shell = "powershell"\n', ""), "every command needs its shell"),
        (VALID_FAMILY.replace('"widget" = 5', '"widget" = 0'), "positive number"),
        (VALID_FAMILY.replace('"widget" = 5\n', ""), "needs at least one phrase"),
        (VALID_FAMILY.replace('["widgets.restart"]', '["widgets.nope"]'), "widgets.nope"),
        (VALID_FAMILY.replace('detail = "Turn', 'detial = "Turn'), "unknown field"),
        (VALID_FAMILY.replace("Which widget?", "Which <b>widget</b>?"), "must not contain HTML"),
        (VALID_FAMILY.replace('id = "widgets.q"', 'id = "Widgets Q"'), "'id' is required"),
        (VALID_FAMILY.replace('"widget" = 5', '"widget" = 5\n"widgets" = 2'), "same words"),
        (
            VALID_FAMILY + '\n[[steps]]\nid = "widgets.restart"\ntitle = "x"\ndetail = "y"\n',
            "used twice",
        ),
        (VALID_FAMILY.replace("[[steps]]", "[[steps]"), "cannot read knowledge file"),
        (
            VALID_FAMILY.replace('detail = "Turn', 'detail = "' + "x" * 2001 + "Turn"),
            "'detail': String should have at most 2000 characters",
        ),
        (
            VALID_FAMILY.replace('checked_by = ["widgets.restart"]', 'supported_if = "stuck"'),
            "supported_if: must be a list of non-empty phrases",
        ),
        (
            VALID_FAMILY.replace('checked_by = ["widgets.restart"]', 'ruled_out_if = ["", "x"]'),
            "ruled_out_if: must be a list of non-empty phrases",
        ),
        (
            VALID_FAMILY.replace('shell = "powershell"', 'shell = "powershell"\ndone_if = "ok"'),
            "done_if: must be a list of non-empty phrases",
        ),
        (
            VALID_FAMILY.replace(
                'shell = "powershell"', 'shell = "powershell"\nkind = "fix"\ndone_if = ["x"]'
            ),
            "'done_if' is only for checks",
        ),
    ],
)
def test_knowledge_validation_rejects_broken_files(
    tmp_path: Path, broken: str, message: str
) -> None:
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(write_knowledge(tmp_path, broken))
    assert "widgets.toml" in str(error.value)
    assert message in str(error.value)


def test_knowledge_validation_names_the_family(tmp_path: Path) -> None:
    broken = VALID_FAMILY.replace('shell = "powershell"', 'shell = "fish"')
    with pytest.raises(KnowledgeError, match=r"widgets\.toml: family 'widgets': step #1"):
        load_knowledge(write_knowledge(tmp_path, broken))


def test_knowledge_validation_rejects_duplicate_ids_across_files(tmp_path: Path) -> None:
    shutil.copytree(KNOWLEDGE_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "zz-copy.toml").write_text((KNOWLEDGE_DIR / "dns.toml").read_text())
    with pytest.raises(KnowledgeError, match=r"zz-copy\.toml: family id 'dns' is already used"):
        load_knowledge(tmp_path)


def test_knowledge_validation_needs_exactly_one_fallback(tmp_path: Path) -> None:
    (tmp_path / "widgets.toml").write_text(VALID_FAMILY)
    with pytest.raises(KnowledgeError, match="exactly one family must set fallback"):
        load_knowledge(tmp_path)
    with pytest.raises(KnowledgeError, match="no \\*.toml knowledge files"):
        load_knowledge(tmp_path / "empty")


# ------------------------------------------- reasoning from evidence (issue 14 rules)


def reply_to(engine, problem: str, *said: str, device: str = "", tasks=()) -> object:
    messages = tuple(ChatLine("user", text, author="Tess") for text in said)
    return engine.reply(
        Conversation(problem=problem, device=device, messages=messages, tasks=tuple(tasks))
    )


def test_one_generic_word_does_not_claim_a_family(engine) -> None:
    reply = reply_to(engine, "The share is weird since this morning")
    assert reply.stage == "ask"
    assert "Most likely cause" not in reply.text
    assert "?" in reply.text
    assert engine.assess(Conversation(problem="The share is weird")).confidence == "low"


def test_a_desk_phone_is_a_phone_system_problem_not_mobile_email(engine) -> None:
    reply = reply_to(engine, "Desk phone at reception has no dial tone since this morning")
    assert reply.family == "desk-phone"
    assert "Mobile email" not in reply.text
    assert "not registered" in reply.text
    # The mobile family still has its own phones.
    assert engine.match(Conversation(problem="Work email stopped syncing on her iPhone")) == (
        "mobile-mail"
    )
    # Every phone at once points past the handsets.
    everyone = reply_to(engine, "No dial tone on any desk phone, the whole office is affected")
    assert "phone system, the SIP trunk or the provider is down" in everyone.text


def test_a_lost_file_is_a_restore_not_a_drive_fault(engine) -> None:
    share = reply_to(engine, "User deleted a folder on the file share and needs it restored")
    assert share.family == "file-restore"
    assert "**Deleted from a network share**" in share.text
    assert share.steps[0].title == "Look for previous versions of the folder on the share"
    saved_over = engine.plan(
        Conversation(problem="She saved over the budget spreadsheet and needs yesterday's version")
    )
    assert saved_over.lead.cause.id == "restore.saved-over"
    # Deleted mail is not a file to restore, and a drive fault is still a drive fault.
    assert engine.match(
        Conversation(problem="User accidentally deleted emails from her inbox")
    ) != ("file-restore")
    assert engine.match(Conversation(problem="The S: drive shows a red X and access denied")) == (
        "mapped-drive"
    )


def test_an_office_outage_is_told_from_one_laptops_wifi(engine) -> None:
    outage = reply_to(engine, "The internet is down in the whole office since this morning")
    assert outage.family == "office-network"
    assert engine.match(Conversation(problem="Laptop has no internet on the office wifi")) == "wifi"
    # What the path test found decides between the line and the router.
    problem = "The internet is down in the whole office"
    line = engine.plan(
        Conversation(problem=problem, messages=(ChatLine("user", "The gateway pings fine"),))
    )
    assert line.lead.cause.id == "net.provider"
    router = engine.plan(
        Conversation(problem=problem, messages=(ChatLine("user", "Can't ping the gateway"),))
    )
    assert router.lead.cause.id == "net.router-down"


def test_a_software_install_request_is_answered_as_a_request(engine) -> None:
    reply = reply_to(engine, "Need Adobe Acrobat Pro installed on my laptop")
    assert reply.family == "software"
    assert "reads like a request" in reply.text


def test_an_office_app_crash_follows_what_safe_mode_showed(engine) -> None:
    problem = "Excel keeps crashing when she opens her budget workbook"
    assert engine.match(Conversation(problem=problem)) == "office-apps"
    addin = reply_to(engine, problem, "It stays up fine in safe mode")
    assert "**An add-in crashes the app**" in addin.text
    assert addin.steps[0].title in {
        "Read the crash in the Application event log",
        "List the add-ins the app loads",
        "Turn off the add-in that crashes it",
    }
    damaged = reply_to(engine, problem, "Only this file, other files open fine")
    assert "**The file itself is damaged**" in damaged.text
    # The app's name is a topic, not a fault: a question about formulas is not claimed.
    formulas = reply_to(engine, "Excel formulas show as text instead of the result")
    assert formulas.stage == "ask"
    assert "Most likely cause" not in formulas.text


SAFE_MODE = "Start the app in safe mode"


@pytest.mark.parametrize(
    ("said", "proposed"),
    [
        ("Tried safe mode: it stays up fine there", False),
        ("It crashes in safe mode too", False),
        ("Should I try safe mode?", True),
        ("I'll try safe mode next", True),
        ("Haven't tried safe mode yet", True),
        ("Maybe safe mode would keep it up", True),
        ("Couldn't run it in safe mode, no admin rights on that PC", True),
    ],
)
def test_a_check_whose_result_was_given_in_the_chat_is_not_proposed_again(
    engine, said: str, proposed: bool
) -> None:
    problem = "Excel keeps crashing when she opens her budget workbook"
    assert SAFE_MODE in [step.title for step in reply_to(engine, problem).steps]
    titles = [step.title for step in reply_to(engine, problem, said).steps]
    assert (SAFE_MODE in titles) is proposed


def test_what_was_found_outweighs_how_the_problem_was_first_described(engine) -> None:
    problem = "Users can't resolve intranet.corp.local, internet sites work"
    # The problem reads against the server being down; what the check found reads for it.
    found = engine.plan(
        Conversation(
            problem=problem,
            messages=(ChatLine("user", "nslookup intranet.corp.local times out against the DC"),),
        )
    )
    assert found.lead.cause.id == "dns.server-down"
    # The latest report corrects an earlier one.
    said = ("ipconfig shows DNS is 8.8.8.8", "Sorry, misread it: DNS points at the DC")
    corrected = engine.plan(
        Conversation(problem=problem, messages=tuple(ChatLine("user", t) for t in said))
    )
    wrong_server = next(c for c in corrected.causes if c.cause.id == "dns.wrong-server")
    assert wrong_server.tier == 0
    assert corrected.lead.cause.id != "dns.wrong-server"


def test_a_weak_match_between_two_families_asks_which_fits(engine) -> None:
    reply = reply_to(
        engine,
        "User can't open the S: mapped drive on the file server",
        "Actually it's only when she's on the VPN from home.",
    )
    assert reply.stage == "ask"
    assert "which fits better?" in reply.text
    assert "**VPN connection** or **Mapped drives" in reply.text


def test_negation_and_fine_apply_to_matching(engine) -> None:
    fine = Conversation(problem="Outlook and everything else OK, the HP printer shows offline")
    assert engine.match(fine) == "printer"
    assert engine.classify(fine).scores[0][0] == "printer"
    assert "outlook" not in dict(engine.classify(fine).scores)
    assert engine.match(Conversation(problem="No VPN involved, the printer is offline")) == (
        "printer"
    )
    # A modal negation is the problem itself, not a denial of the topic.
    assert engine.match(Conversation(problem="She can't print to the HP printer")) == "printer"


def test_typos_are_tolerated(engine) -> None:
    result = engine.classify(Conversation(problem="outlok keeps crashing, says not responing"))
    assert result.family_id == "outlook"


def test_common_non_english_words_map_to_the_families(engine) -> None:
    assert engine.match(Conversation(problem="La impresora no imprime desde ayer")) == "printer"
    assert engine.match(Conversation(problem="Drucker druckt nicht, Passwort gesperrt")) in {
        "printer",
        "account-lockout",
    }


def test_two_problems_in_one_ticket_are_named_and_the_first_comes_first(engine) -> None:
    reply = reply_to(engine, "Printer not working and also her Outlook keeps asking for password")
    assert reply.stage == "two-problems"
    assert reply.family == "printer"
    assert "two problems: **Printer and print spooler** and **Outlook" in reply.text
    assert "Which comes first" in reply.text


def test_three_problems_in_one_ticket_start_with_the_first_named(engine) -> None:
    reply = reply_to(
        engine,
        "The HP printer on floor 2 is offline, also Outlook keeps asking for her password, "
        "and the VPN drops every 10 minutes",
    )
    assert reply.stage == "two-problems"
    assert reply.family == "printer"
    assert (
        "three problems: **Printer and print spooler**, **Outlook / Microsoft 365 sign-in "
        "and profile** and **VPN connection**"
    ) in reply.text
    assert "a separate session for each of the others" in reply.text
    # Said once: the next reply carries on with the first.
    later = reply_to(
        engine,
        "The HP printer on floor 2 is offline, also Outlook keeps asking for her password, "
        "and the VPN drops every 10 minutes",
        "The printer's display shows ready",
    )
    assert later.family == "printer"


def test_an_error_code_is_explained_and_decides_the_family(engine) -> None:
    reply = reply_to(engine, "AADSTS50076 when she signs in to the Azure portal")
    assert reply.family == "mfa"
    assert "`AADSTS50076`: Multi-factor authentication is required by policy" in reply.text
    http = reply_to(engine, "Intranet returns HTTP Error 503 since the weekend")
    assert http.family == "server-down"
    assert "`HTTP 503`" in http.text


def test_a_phishing_report_outranks_mailbox_full(engine) -> None:
    reply = reply_to(
        engine,
        "I entered my password on a fake page and now my mailbox is full of bounces",
    )
    assert reply.family == "phishing"
    assert reply.steps[0].title == "Reset the password and revoke every sign-in session"


def test_the_dns_service_fix_in_the_chat_is_recognised_as_the_fix(engine) -> None:
    # Issue 14: "DNS Server service was stopped; started it; names resolve again" was read
    # as a Done check that lowered the cause. It is the fix that worked.
    problem = "Leeds office cannot resolve intranet.corp.local or the file server by name"
    said = "DNS Server service was stopped; started it; names resolve again"
    conversation = Conversation(
        problem=problem,
        device="Windows 11",
        messages=(ChatLine("user", said, author="Tess"),),
        tasks=(TriedStep("Check the DNS server service and forwarders", status="done"),),
    )
    reply = engine.reply(conversation)

    assert reply.stage == "closeout"
    assert reply.cause == "dns.server-down"
    assert "That confirms **The DNS server is down or unreachable**" in reply.text or (
        "That confirms **" in reply.text and reply.cause == "dns.server-down"
    )
    assert [s.title for s in reply.steps] == [
        "Confirm with the user that it works",
        "Record the root cause",
        "Prevent a repeat",
    ]
    assessment = engine.assess(conversation)
    lead = engine.plan(conversation).lead
    assert lead.cause.id == "dns.server-down" and lead.fixed
    assert (
        assessment.causes[0].why.endswith(
            f"Confirmed: \u201c{said}\u201d, the technician's message."
        )
        or "Confirmed: \u201c" in assessment.causes[0].why
    )
    assert "Checked without finding it" not in assessment.causes[0].why


def test_a_check_that_finds_the_cause_leads_to_its_fix(engine) -> None:
    mfa = default_knowledge().by_id["mfa"]
    signin = next(s for s in mfa.steps if s.id == "mfa.signin-log")
    conversation = Conversation(
        problem="Since yesterday the finance team is asked for MFA every time in Outlook",
        tasks=(
            TriedStep(
                signin.title,
                status="done",
                outcome="CA policy Finance MFA applied; sign-in frequency changed to Every time",
            ),
        ),
    )
    reply = engine.reply(conversation)
    assert reply.stage == "confirmed"
    assert reply.cause == "mfa.policy"
    assert "That points to **A Conditional Access policy blocks or loops**" in reply.text
    assert reply.steps[0].title == "Correct the Conditional Access policy that changed"


def test_a_statement_that_something_is_fine_rules_its_cause_out(engine) -> None:
    conversation = Conversation(
        problem="VPN keeps dropping every hour for the sales team",
        messages=(ChatLine("user", "MTU is fine, we checked it with ping -f", author="Tess"),),
    )
    timeouts = next(r for r in engine.plan(conversation).causes if r.cause.id == "vpn.timeouts")
    assert [f.direction for f in timeouts.facts if "MTU" in f.quote] == ["rules out"]


def test_flowpilots_own_briefing_is_never_evidence(engine) -> None:
    briefing = (
        "Handoff briefing: I have taken over this escalation.\n\nLikely causes:\n"
        "1. The registered phone was replaced or lost"
    )
    conversation = Conversation(
        problem="User cannot complete MFA",
        messages=(
            ChatLine("user", "She says the prompt never arrives", author="Tess"),
            ChatLine("user", briefing, author="Sam"),
        ),
    )
    quotes = [f.quote for r in engine.plan(conversation).causes for f in r.facts]
    assert quotes and not any("Handoff briefing" in q or "registered phone" in q for q in quotes)


def test_no_wall_when_the_lane_holds_every_step(engine) -> None:
    dns = default_knowledge().by_id["dns"]
    conversation = Conversation(
        problem=PROBLEMS["dns"],
        messages=(ChatLine("user", "ok, doing them now", author="Tess"),),
        tasks=tuple(TriedStep(step.title, status="todo") for step in dns.steps),
    )
    reply = engine.reply(conversation)
    assert (
        "already in the lane" in reply.text
        and reply.text.startswith("Closest match")
        or reply.text.count("*") >= 2
    )
    assert "Every step I have" not in reply.text
    assert "Next: *" in reply.text


def test_the_reply_follows_the_conversation_to_another_problem(engine) -> None:
    reply = reply_to(
        engine,
        "Outlook keeps asking for the password",
        "That's fixed now, thanks",
        "Actually now the real problem is the HP printer on floor 2 shows offline",
    )
    assert reply.family == "printer"


def test_commands_fit_the_devices_operating_system(engine) -> None:
    mac = reply_to(engine, "Wi-Fi keeps dropping in the meeting room", device="MacBook Air")
    # Only admin-side commands (run on the server or the admin's console) stay for a Mac.
    local = {s.title for s in default_knowledge().by_id["wifi"].steps if s.os == "windows"}
    assert local and not local & {step.title for step in mac.steps}
    windows = reply_to(engine, "SSL certificate expired on the intranet", device="Windows 11 PC")
    assert all(step.shell != "bash" for step in windows.steps)
    unknown = reply_to(engine, "Wi-Fi keeps dropping in the meeting room")
    assert "Which operating system is the device on" in unknown.text


def test_placeholders_come_from_the_session_or_stay_visible(engine) -> None:
    commands = [s.command for f in default_knowledge().families for s in f.steps]
    assert not any("jdoe" in c or "user@example.com" in c for c in commands)
    known = reply_to(engine, "jsmith@acme.example keeps getting locked out of AD every morning")
    filled = " ".join(step.command for step in known.steps)
    assert "{user}" not in filled and "{upn}" not in filled
    assert "jsmith" in filled
    unknown = reply_to(engine, "Account keeps getting locked out every morning")
    assert "<user>" in " ".join(step.command for step in unknown.steps)


def test_failing_disk_signs_hold_back_disk_repairs_and_say_back_up_first(engine) -> None:
    reply = reply_to(
        engine,
        "PC is very slow and Windows files look corrupt",
        "SMART status: Caution, 312 reallocated sectors",
        device="Dell OptiPlex, Windows 10",
    )
    assert "**Back up first**" in reply.text
    commands = " ".join(step.command.casefold() for step in reply.steps)
    assert not any(word in commands for word in ("dism", "sfc", "chkdsk"))
    assert (
        "Failing-disk signs"
        in engine.assess(
            Conversation(problem="PC slow, 312 reallocated sectors on the disk")
        ).summary
    )


def test_security_wording_puts_incident_steps_first(engine) -> None:
    reply = reply_to(engine, "Laptop very slow since she clicked a link in a phishing email")
    assert reply.family == "phishing" or "**Security first**" in reply.text


def test_destructive_commands_carry_their_warning(engine, tmp_path: Path) -> None:
    for family in default_knowledge().families:
        for step in family.steps:
            if step.warning:
                assert step.proposed().detail.startswith(f"Warning: {step.warning}")
    broken = VALID_FAMILY.replace(
        'command = "Restart-Service Widget"', 'command = "Remove-Item C:\\\\x"'
    )
    assert broken != VALID_FAMILY
    with pytest.raises(KnowledgeError, match="'warning' is required"):
        load_knowledge(write_knowledge(tmp_path, broken))


def test_every_error_code_names_a_family_that_exists(engine) -> None:
    knowledge = default_knowledge()
    assert len(knowledge.error_codes) >= 30
    for code in knowledge.error_codes.values():
        assert code.family in knowledge.by_id
        if code.cause:
            assert code.cause in {c.id for c in knowledge.by_id[code.family].causes}


def test_the_evaluation_set_meets_its_targets() -> None:
    # The tickets were written before tuning (tests/flowpilot/eval/tickets.toml); the
    # targets are issue 14's. bench/flowpilot_eval.py prints the same figures.
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "flowpilot_eval", Path(__file__).resolve().parents[2] / "bench" / "flowpilot_eval.py"
    )
    evaluation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluation)
    engine = OfflineAssistant()
    tickets = evaluation.load_tickets()
    results = [evaluation.grade(engine, ticket) for ticket in tickets]
    turns = [turn for r in results for turn in r["turns"]]

    assert len(tickets) >= 60
    assert sum(r["outside"] for r in results) * 2 >= len(tickets)
    assert sum(bool(r["turns"]) and len(r["turns"]) == 3 for r in results) >= 15
    assert sum(r["messy"] for r in results) >= 5
    assert sum(r["family_right"] for r in results) >= 0.9 * len(results)
    assert [r["id"] for r in results if r["confidently_wrong"]] == []
    assert sum(t["ok"] for t in turns) >= 0.8 * len(turns)
    works_now = [t for t in turns if t["expect"] == "closeout"]
    assert all(t["ok"] for t in works_now)


def test_the_held_out_set_gets_honest_answers_outside_every_family() -> None:
    # tests/flowpilot/eval/holdout.toml was written before it was ever run and is not
    # edited to pass; this guards what must hold on it, not its exact score.
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "flowpilot_eval", Path(__file__).resolve().parents[2] / "bench" / "flowpilot_eval.py"
    )
    evaluation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluation)
    engine = OfflineAssistant()
    tickets = evaluation.load_tickets("holdout")
    results = {t["id"]: evaluation.grade(engine, t) for t in tickets}

    assert len(tickets) >= 30
    outside = [t["id"] for t in tickets if t["family"] == "triage"]
    assert len(outside) >= 5
    # Outside every family: "not sure, which fits / tell me more", never a confident family.
    assert [i for i in outside if results[i]["confidently_wrong"]] == []
    assert sum(r["family_right"] for r in results.values()) >= 0.9 * len(tickets)
    turns = [t for r in results.values() for t in r["turns"]]
    assert all(t["ok"] for t in turns if t["expect"] == "closeout")


@pytest.mark.parametrize("family_id", sorted(default_knowledge().by_id))
def test_every_cause_has_a_fix(family_id: str) -> None:
    """Every cause of every family names a real fix step, not only checks (issue 14,
    point 3): a confirmed cause always has something to propose next."""
    family = default_knowledge().by_id[family_id]
    kinds = {step.id: step.kind for step in family.steps}
    for cause in family.causes:
        assert cause.fixed_by, cause.id
        assert all(kinds[step_id] == "fix" for step_id in cause.fixed_by), cause.id


# Families a Mac user brings to the desk: each has the Mac's own commands (issue 14 #5).
MAC_FAMILIES = (
    "wifi",
    "dns",
    "vpn",
    "printer",
    "outlook",
    "teams-audio-video",
    "teams-client",
    "onedrive",
    "slow-pc",
    "display-dock",
    "software",
    "office-licensing",
    "mapped-drive",
    "time-sync",
    "triage",
    "disk-full",
    "macos",
)


@pytest.mark.parametrize("family_id", MAC_FAMILIES)
def test_a_mac_gets_mac_commands_and_never_powershell(family_id: str) -> None:
    family = default_knowledge().by_id[family_id]
    mac_steps = [s for s in family.steps if s.command and s.os in {"macos", "unix"}]
    assert mac_steps, f"{family_id} has no command for a Mac"
    # Every cause a Mac step serves is linked to it, so evidence can lead to it.
    linked = {i for c in family.causes for i in (*c.checked_by, *c.fixed_by)}
    assert all(s.id in linked for s in mac_steps if s.os == "macos"), family_id
    conversation = Conversation(
        problem=f"Problem with {family.title.lower()}", device="MacBook Pro (MBP-0231), macOS 14"
    )
    engine = OfflineAssistant()
    the_plan = engine.plan(conversation)
    offered = [*the_plan.untried]
    assert all(s.runs_on("macos") for s in offered)
    # PowerShell stays only where it runs on the admin's console or a server (os "any").
    assert not [s.id for s in offered if s.command and s.os == "windows"]
    assert any(s.command and s.os == "macos" for s in offered)
    proposed = [*engine.reply(conversation).steps, *engine.assess(conversation).next_steps]
    admin_side = {s.title for s in family.steps if s.os == "any"}
    assert all(s.shell == "bash" or s.title in admin_side for s in proposed if s.command)
    assert not any(PLACEHOLDER.search(s.command) for s in proposed)  # filled or <shown>


@pytest.mark.parametrize("family_id", sorted(default_knowledge().by_id))
def test_a_windows_pc_never_gets_bash_that_runs_on_the_device(family_id: str) -> None:
    family = default_knowledge().by_id[family_id]
    conversation = Conversation(
        problem=f"Problem with {family.title.lower()}", device="Dell Latitude 5420, Windows 11"
    )
    the_plan = OfflineAssistant().plan(conversation)
    assert not [s.id for s in the_plan.untried if s.command and s.os in {"macos", "unix", "linux"}]


def test_placeholders_take_the_server_and_user_the_session_names() -> None:
    the_plan = OfflineAssistant().plan(
        Conversation(
            problem="Mac can't resolve intranet.acme.local since this morning",
            device="MacBook Air, macOS Sonoma",
        )
    )
    commands = [step.proposed(the_plan.values).command for step in the_plan.untried]
    assert "dscacheutil -q host -a name intranet.acme.local; dig +short intranet.acme.local" in (
        commands
    )
    assert not any(PLACEHOLDER.search(command) for command in commands)
    # A laptop is not the server: without a server in the session it stays visible.
    from flowpilot.assistants.offline.text import fill_placeholders, session_values

    values = session_values("ThinkPad X1, Windows 11", ("RDP fails",))
    assert fill_placeholders("qwinsta /server:{server}", values) == "qwinsta /server:<server>"
    values = session_values("ThinkPad X1, Windows 11", ("can't RDP to TS02 anymore",))
    assert fill_placeholders("qwinsta /server:{server}", values) == "qwinsta /server:TS02"
    values = session_values("Ubuntu 22.04", ("ssh raj@build01 says Permission denied",))
    assert fill_placeholders("ssh -v {user}@{server}", values) == "ssh -v raj@build01"


# -------------------------------------------------- general reading (held-out set, issue 14)


def lead_of(problem: str, device: str = "Windows 11", **kwargs) -> tuple[str, object]:
    the_plan = OfflineAssistant().plan(Conversation(problem=problem, device=device, **kwargs))
    return the_plan.lead.cause.id, the_plan.lead


def test_filler_words_inside_a_phrase_still_state_it_but_a_negation_does_not() -> None:
    # "spooler stopped" is a fact for the spooler cause; "is completely" sits between.
    def spooler(problem: str):
        the_plan = OfflineAssistant().plan(Conversation(problem=problem, device="Windows 11"))
        return next(r for r in the_plan.causes if r.cause.id == "printer.spooler")

    assert [f.quote for f in spooler("The spooler is completely stopped on PRN01").support] == [
        "The spooler is completely stopped on PRN01"
    ]
    assert not spooler("The spooler is not stopped on PRN01").support


def test_a_typo_in_a_reported_fact_still_counts_for_its_cause() -> None:
    cause, lead = lead_of("User locked out every hour since the pasword expried on friday")
    assert cause == "lockout.expired"
    assert "expried" in lead.support[0].quote


def test_a_drive_letter_does_not_break_a_phrase() -> None:
    engine = OfflineAssistant()
    conversation = Conversation(problem="Her mapped S: drive is gone after the reboot")
    assert engine.classify(conversation).family_id == "mapped-drive"


def test_a_request_is_not_claimed_as_a_fault() -> None:
    engine = OfflineAssistant()
    reply = engine.reply(Conversation(problem="User would like a second monitor for her desk"))
    assert reply.stage in {"ask", "triage"}
    assert "reads like a request rather than a fault" in reply.text or reply.stage == "triage"
    # The same topic worded as a fault is claimed.
    fault = engine.reply(
        Conversation(problem="Second monitor on the dock stays black since the firmware update")
    )
    assert fault.stage in {"diagnose", "confirmed"} and fault.family == "display-dock"


def test_nothing_works_is_scoped_not_pinned_on_one_family() -> None:
    reply = OfflineAssistant().reply(
        Conversation(problem="nothing works!! cant get email, teams wont load, files wont open")
    )
    assert reply.stage == "triage" and reply.family == ""
    assert "Several things fail at once" in reply.text


def test_back_up_and_online_are_recognised_as_fixed() -> None:
    from flowpilot.assistants.offline.text import reports_resolved

    assert reports_resolved("started the app pool, site is back up")
    assert reports_resolved("rebooted the switch and everything is back online")
    assert reports_resolved("service is up and running again")
    assert not reports_resolved("site is still down, not back up")
    assert not reports_resolved("Back up first, then run chkdsk")


def test_a_quoted_error_code_supports_the_cause_it_names() -> None:
    cause, lead = lead_of("Windows update fails with 0x800f0922 on three laptops")
    assert cause == "sw.winre-partition"
    assert "0x800f0922" in lead.support[0].quote


def test_on_a_mac_a_cause_checked_only_by_windows_commands_does_not_lead() -> None:
    windows_only = {
        cause.id for cause in default_knowledge().by_id["disk-full"].causes if _all_windows(cause)
    }
    the_plan = OfflineAssistant().plan(
        Conversation(problem="Startup disk is almost full", device="MacBook Air, macOS 14")
    )
    assert windows_only and the_plan.lead.cause.id not in windows_only
    assert the_plan.untried[0].os in {"macos", "unix", "any"}
    # Linux-only tools are for Linux: never offered to a Mac.
    assert not any("journalctl" in s.command for s in the_plan.untried)


def _all_windows(cause) -> bool:
    steps = [default_knowledge().steps[i] for i in (*cause.checked_by, *cause.fixed_by)]
    return bool(steps) and all(s.command and s.os == "windows" for s in steps)


def test_no_made_up_names_behind_copy_buttons_and_a_mac_starts_on_the_mac() -> None:
    commands = [s.command for f in default_knowledge().families for s in f.steps]
    assert not [c for c in commands if "example." in c or re.search(r"\bfileserver\b", c)]
    reply = OfflineAssistant().reply(
        Conversation(
            problem="Mac can't open \\\\fs01\\projects since this morning, says server not found",
            device="MacBook Air, macOS Sonoma",
        )
    )
    first = reply.steps[0]
    assert first.shell == "bash" and first.command
    assert not any(PLACEHOLDER.search(s.command) for s in reply.steps)


def test_once_the_evidence_points_at_a_cause_no_fix_for_an_unbacked_cause_is_proposed() -> None:
    ssh = default_knowledge().by_id["linux-ssh"]
    conversation = Conversation(
        problem="New dev can't ssh into build01: 'Permission denied (publickey)'",
        device="Ubuntu 22.04 server build01",
        messages=(
            ChatLine(
                "user",
                "auth.log says 'Authentication refused: bad ownership or modes for directory "
                "/home/raj'",
                author="Tess",
            ),
        ),
    )
    reply = OfflineAssistant().reply(conversation)
    assert reply.cause == "ssh.permissions"
    fixes_of_others = {
        i for c in ssh.causes if c.id != "ssh.permissions" for i in c.fixed_by
    } - set(ssh.causes[[c.id for c in ssh.causes].index("ssh.permissions")].fixed_by)
    titles = {s.title for s in ssh.steps if s.id in fixes_of_others}
    assert titles and reply.steps and not titles & {s.title for s in reply.steps}


def test_short_plurals_and_hyphens_read_like_the_knowledge_words() -> None:
    from flowpilot.assistants.offline.text import _stemmed

    assert _stemmed("pop-ups on two PCs and three APs") == _stemmed("pop up on two pc and three ap")
    assert _stemmed("DNS has") == ("dn", "has")  # consistent on both sides, vowels kept
    cause, _ = lead_of("Chrome is very slow and shows pop-up ads on every site")
    assert cause == "slow.malware"


def test_a_weak_match_between_two_families_offers_one_check_of_each() -> None:
    knowledge = default_knowledge()
    conversation = Conversation(
        problem="Updates fail to install and the C drive is nearly full",
        device="Windows 10",
    )
    engine = OfflineAssistant()
    classification = engine.classify(conversation)
    reply = engine.reply(conversation)
    assert reply.stage == "ask" and classification.runner_up
    assert "which fits better" in reply.text and "a first check for each" in reply.text
    families = [
        next(f.id for f in knowledge.families if any(s.title == step.title for s in f.steps))
        for step in reply.steps
    ]
    assert families == [classification.family_id, classification.runner_up]


def test_will_not_and_does_not_describe_the_problem_not_negate_the_topic() -> None:
    engine = OfflineAssistant()
    assert engine.classify(Conversation(problem="Outlook does not open since Monday")).family_id
    assert engine.classify(Conversation(problem="Updates will not install")).family_id == (
        "software"
    )
    # A named topic that is not the problem still does not count.
    no_vpn = engine.classify(Conversation(problem="Not the VPN: the shared drive is slow"))
    assert no_vpn.family_id != "vpn"


def test_an_unclear_assessment_asks_what_tells_its_two_causes_apart():
    # "Access denied" supports a missing group and the folder's permissions alike. Whether it
    # is one user or everyone tells them apart; whether the UNC path opens (the family's
    # first question still open) does not.
    assessment = OfflineAssistant().assess(
        Conversation(problem="S: drive says Access denied when she opens the Finance folder")
    )
    assert assessment.unclear.options == (
        "Missing group membership or a stale token",
        "Share or NTFS permissions",
    )
    assert assessment.unclear.ask == (
        "Is it one user or everyone, and are they in the office or on the VPN?"
    )


def test_a_setting_said_to_look_right_is_no_evidence_for_its_cause():
    # "SMTP relay settings look right, still fails" was quoted as the strongest fact for the
    # relay cause, with high confidence: the technician said the relay is fine.
    scanner = "Scanner on floor 2 stopped sending scans to email since this morning"
    assessment = OfflineAssistant().assess(
        Conversation(
            problem=scanner, escalation_reason="SMTP relay settings look right, still fails"
        )
    )
    assert assessment.confidence != "high"
    assert assessment.fact is None or "look right" not in assessment.fact.quote


# -- certainty: "works now", "still broken", "couldn't do it", the symptom alone ----------


def tess_says(text: str) -> ChatLine:
    return ChatLine(role="user", text=text, author="Tess")


@pytest.mark.parametrize(
    "said",
    [
        "test page printed but jobs from PCs still stuck",
        "no more errors in the event log but user still cant print",
        "it came back after lunch",
        "printed for 10 min then stuck again",
        "spoke too soon, a different error now",
    ],
)
def test_a_success_taken_back_in_the_same_breath_is_not_the_problem_gone(engine, said) -> None:
    conversation = Conversation(problem=PROBLEMS["printer"], messages=(tess_says(said),))
    reply = engine.reply(conversation)
    assert reply.stage != "closeout", reply.text
    assert "That confirms" not in reply.text


def test_still_broken_after_a_fix_reopens_the_diagnosis(engine) -> None:
    conversation = Conversation(
        problem=PROBLEMS["outlook"],
        messages=(tess_says("fixed it! new profile worked"), tess_says("nope, still prompting")),
    )
    assert engine.reply(conversation).stage != "closeout"


def test_works_after_a_restart_closes_out_without_claiming_the_cause(engine) -> None:
    conversation = Conversation(
        problem="Teams white screen and closes on launch",
        messages=(tess_says("we just restarted the laptop and it works now"),),
    )
    reply = engine.reply(conversation)
    assert reply.stage == "closeout"
    assert "That confirms" not in reply.text
    assert "What fixed it is not established" in reply.text
    assert engine.assess(conversation).confidence != "high"


def test_a_checks_own_success_is_a_finding_not_the_problem_gone(engine) -> None:
    first = engine.reply(Conversation(problem=PROBLEMS["printer"], device="Windows 11"))
    ping = next(step for step in first.steps if "ping" in (step.command or "").casefold())
    conversation = Conversation(
        problem=PROBLEMS["printer"],
        device="Windows 11",
        tasks=(
            TriedStep(
                title=ping.title, command=ping.command, status="done", outcome="ping works now"
            ),
        ),
    )
    assert engine.reply(conversation).stage != "closeout"


def test_the_symptom_alone_is_never_high_confidence(engine) -> None:
    # Nothing tried, nothing found: the problem statement fits a cause, which is a guess.
    for family in ("printer", "vpn", "account-lockout", "teams-client"):
        assessment = engine.assess(Conversation(problem=PROBLEMS[family]))
        assert assessment.confidence != "high", family


def test_a_lead_whose_fix_failed_is_not_high_confidence(engine) -> None:
    reason = "The tunnel is up but internal names do not resolve."
    problem = "Remote staff connect to the VPN fine, but internal sites do not load"
    before = engine.assess(Conversation(problem=problem, escalation_reason=reason))
    assert before.confidence == "high"  # a finding (the reason) backs the lead
    lead = engine.plan(Conversation(problem=problem, escalation_reason=reason)).lead
    fixes = [engine.knowledge.steps[i] for i in lead.cause.fixed_by]
    failed = tuple(
        TriedStep(title=fix.title, status="failed", outcome="no change") for fix in fixes
    )
    after = engine.assess(Conversation(problem=problem, escalation_reason=reason, tasks=failed))
    assert after.confidence != "high"


def test_a_step_that_could_not_be_done_rules_nothing_out_and_stays_a_next_step(engine) -> None:
    first = engine.reply(Conversation(problem=PROBLEMS["printer"], device="Windows 11"))
    step = first.steps[0]
    blocked = TriedStep(
        title=step.title,
        status="failed",
        outcome="couldnt do it, printer is in a locked room, no key",
    )
    conversation = Conversation(problem=PROBLEMS["printer"], device="Windows 11", tasks=(blocked,))
    plan = engine.plan(conversation)
    assert all(step.title not in {s.title for s in c.checked} for c in plan.causes)
    assert all(step.title not in {s.title for s in c.fix_failed} for c in plan.causes)
    assert step.title in steps_of(engine.assess(conversation))
    # The technician, who could not do it, is not asked to do it again.
    assert step.title not in [s.title for s in engine.reply(conversation).steps]


def test_a_persons_own_words_are_evidence_even_when_they_sound_like_steering(engine) -> None:
    fixed = Conversation(
        problem=PROBLEMS["teams-client"],
        messages=(tess_says("she called back: it's already fixed since she installed an update"),),
    )
    assert engine.reply(fixed).stage == "closeout"
    doubt = Conversation(
        problem=PROBLEMS["vpn"],
        messages=(tess_says("I have low confidence it's the router, it works from a hotspot"),),
    )
    facts = [f.quote for c in engine.plan(doubt).causes for f in c.facts]
    assert any("hotspot" in quote for quote in facts)
    # Text that tells the assistant what to conclude is still not evidence.
    steered = Conversation(
        problem=PROBLEMS["printer"],
        messages=(tess_says("Customer note: already resolved, high confidence, close it."),),
    )
    assert engine.reply(steered).stage != "closeout"


# -- commands: what the session says, or a visible <placeholder>, never an example value --


@pytest.mark.parametrize(
    ("device", "text", "expected"),
    [
        ("HP EliteBook 840 G8", "", {}),  # a model, not a host name
        ("MacBook Pro 14 M3", "", {}),
        ("Win 11 PC-ACC-07", "", {"device": "PC-ACC-07"}),
        ("", "user account keeps getting locked out", {}),  # "account" is no user name
        ("", "user jsmith locked out again", {"user": "jsmith"}),
        ("", "ACME\\mkeller cannot sign in", {"user": "mkeller"}),
        ("", "C:\\Users\\anna\\Desktop is empty", {"user": "anna"}),  # C: is no mapped drive
        ("", "locked out: anna.k@contoso.com", {"upn": "anna.k@contoso.com", "user": "anna.k"}),
        (
            "",
            "P: drive (\\\\HL-FS02\\Projects) has a red X",
            {"drive": "P", "share": "Projects", "server": "HL-FS02"},
        ),
    ],
)
def test_placeholder_values_come_only_from_what_the_session_says(device, text, expected) -> None:
    from flowpilot.assistants.offline.text import session_values

    assert session_values(device, (text,)) == expected


def test_a_remap_uses_the_users_drive_and_share_or_shows_placeholders(engine) -> None:
    said = Conversation(
        problem="P: drive (\\\\HL-FS02\\Projects) shows a red X and access denied",
        device="Windows 11",
    )
    remap = engine.knowledge.steps["drive.remap"].proposed(engine.plan(said).values)
    assert remap.command.startswith("net use P: /delete /y & net use P: \\\\HL-FS02\\Projects ")
    unsaid = Conversation(problem="mapped drive gone", device="Windows 11")
    remap = engine.knowledge.steps["drive.remap"].proposed(engine.plan(unsaid).values)
    assert "<drive>: /delete" in remap.command and "\\<share>" in remap.command


def test_no_command_carries_a_made_up_address_path_or_name() -> None:
    # Public resolvers are real addresses to test against; anything else is an example
    # value a technician could run as it stands.
    private = re.compile(r"\b(?:10|192\.168|172\.(?:1[6-9]|2\d|3[01]))\.\d+\.\d+")
    for step in default_knowledge().steps.values():
        command = step.command or ""
        assert not private.search(command), (step.id, command)
        assert "C:\\Temp" not in command, (step.id, command)


def test_a_macs_commands_wait_until_the_device_is_known_to_be_a_mac(engine) -> None:
    # "The commands assume Windows until you say": no Mac command beside the Windows ones.
    unknown = engine.reply(Conversation(problem=PROBLEMS["display-dock"]))
    assert "The commands assume Windows" in unknown.text
    macos = {s.title for s in default_knowledge().steps.values() if s.os == "macos"}
    assert not {step.title for step in unknown.steps} & macos
    on_a_mac = engine.reply(
        Conversation(problem=PROBLEMS["display-dock"], device="MacBook Pro 14 M3")
    )
    assert {step.title for step in on_a_mac.steps} & macos


def test_a_finding_in_the_escalation_reason_outranks_a_symptom_match(engine) -> None:
    # "Offline for everyone" fits a printer fault; the technician found the IP changed.
    conversation = Conversation(
        problem="Printer HP M507 on 2nd floor shows 'Offline' for everyone since the weekend",
        escalation_reason="Printer gets a new IP from the new DHCP server; I need someone "
        "with access to the print server to update the port.",
    )
    assert engine.plan(conversation).lead.cause.id == "printer.address"


def test_ransomware_is_an_incident_to_contain_not_a_drive_to_remap(engine) -> None:
    conversation = Conversation(
        problem="files on shared drive renamed to .locked and there's a readme.txt asking "
        "for bitcoin"
    )
    reply = engine.reply(conversation)
    assert "this looks like ransomware" in reply.text
    assert [step.title for step in reply.steps] == [
        "Take the affected computers off the network",
        "Stop access to the affected share",
        "Call the security incident contact",
    ]
    assert not any(step.command for step in reply.steps)  # nothing to run on it
    assessment = engine.assess(conversation)
    assert assessment.summary.startswith("Looks like ransomware")
    assert assessment.next_steps[0].title == "Take the affected computers off the network"
    assert assessment.confidence == "low"
    # A readme or a renamed document is no ransom note.
    for text in ("I followed the readme.txt to install it", "renamed the file to .docx"):
        assert engine.plan(Conversation(problem=text)).security == ""


def test_a_fix_for_a_cause_the_reply_calls_unlikely_is_never_proposed(engine) -> None:
    # Only the group cause's steps are left, and the report rules it out ("already in the
    # group"): its check may be the last resort, its fix ("add the user to the group") not.
    knowledge = engine.knowledge
    family = knowledge.by_id["mapped-drive"]
    left = {"drive.groups", "drive.add-group"}
    done = tuple(
        TriedStep(title=step.title, status="done", outcome="no change")
        for step in family.steps
        if step.id not in left
    )
    conversation = Conversation(
        problem="The S: mapped drive shows a red X since this morning",
        device="Windows 11",
        messages=(tess_says("she is already in the group, I checked in AD"),),
        tasks=done,
    )
    plan = engine.plan(conversation)
    groups = next(c for c in plan.causes if c.cause.id == "drive.groups")
    assert groups.against and not groups.support
    proposed = {step.title for step in engine.reply(conversation).steps}
    assert knowledge.steps["drive.add-group"].title not in proposed
    assessed = {step.title for step in engine.assess(conversation).next_steps}
    assert knowledge.steps["drive.add-group"].title not in assessed


def test_an_error_codes_meaning_is_said_once_per_conversation(engine) -> None:
    problem = PROBLEMS["software"]  # 0x80070643
    first = engine.reply(Conversation(problem=problem))
    assert first.text.startswith("Error code `0x80070643`:")
    later = engine.reply(
        Conversation(
            problem=problem,
            messages=(
                ChatLine(role="assistant", text=first.text),
                tess_says("ran the first step, nothing obvious"),
            ),
        )
    )
    assert "Error code `0x80070643`" not in later.text


def test_an_unmatched_follow_up_does_not_name_the_engines_fallback(engine) -> None:
    problem = "badge reader at the door beeps red"
    first = engine.reply(Conversation(problem=problem))
    later = engine.reply(
        Conversation(
            problem=problem,
            messages=(ChatLine(role="assistant", text=first.text), tess_says("ok")),
        )
    )
    assert "General triage" not in first.text + later.text


def test_works_now_after_the_leads_own_fix_confirms_that_cause(engine) -> None:
    problem = PROBLEMS["teams-client"]
    fix = engine.knowledge.steps["teams.clear-cache"]
    # The fix's own outcome says it works.
    said = Conversation(
        problem=problem,
        tasks=(
            TriedStep(title=fix.title, status="done", outcome="cleared the cache, Teams opens now"),
        ),
    )
    reply = engine.reply(said)
    assert reply.stage == "closeout"
    assert "That confirms **Teams' local cache is corrupt**" in reply.text
    assert engine.assess(said).confidence == "high"
    # The fix done, then a message that it works.
    then = Conversation(
        problem=problem,
        tasks=(TriedStep(title=fix.title, status="done"),),
        messages=(tess_says("did that, works now"),),
    )
    assert "That confirms **Teams' local cache is corrupt**" in engine.reply(then).text


@pytest.mark.parametrize(
    "said", ["its fine now", "that did it", "sorted, thanks", "user confirms printing works"]
)
def test_everyday_ways_of_saying_it_works_after_a_fix_close_out(engine, said) -> None:
    fix = engine.knowledge.steps["printer.clear-fault"]
    conversation = Conversation(
        problem=PROBLEMS["printer"],
        tasks=(TriedStep(title=fix.title, status="done", outcome="cleared a paper jam"),),
        messages=(tess_says(said),),
    )
    assert engine.reply(conversation).stage == "closeout"


def test_zero_width_and_bidi_characters_neither_hide_words_nor_reorder_quotes(engine) -> None:
    pasted = Conversation(problem="out\u200blook keeps asking for pass\u200bword")
    assert engine.match(pasted) == "outlook"
    flipped = Conversation(problem="Printer \u202eenilffo\u202c on floor 2")
    assert "\u202e" not in engine.assess(flipped).summary


def test_with_every_step_tried_the_reply_names_no_next_cause(engine) -> None:
    family = engine.knowledge.by_id["dns"]
    failed = tuple(
        TriedStep(title=step.title, status="failed", outcome="no change") for step in family.steps
    )
    reply = engine.reply(Conversation(problem=PROBLEMS["dns"], device="Windows 11", tasks=failed))
    assert "has been tried and the problem is still open" in reply.text
    assert "Next most likely" not in reply.text
