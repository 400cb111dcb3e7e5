"""The offline FlowPilot engine: a deterministic troubleshooting knowledge base.

No network, no model, no Django. Four layers, each using only the ones before it:

- ``text``: words, stems, clauses, negation, typos (rapidfuzz), OS, error codes, placeholders;
- ``knowledge``: the TOML files under ``flowpilot/knowledge/`` (one problem family per
  file, plus ``error-codes.toml``), validated with the pydantic models of
  ``flowpilot.assistants.base``, and the precompiled phrase index;
- ``reasoning``: which family (honest matching), which causes the evidence supports,
  confirms or rules out, which steps come next, whether the problem is fixed;
- ``wording``: the chat reply and the handoff assessment written from that plan.

A family file looks like this (``load_knowledge`` names the file and field of a mistake)::

    id = "dns"                       # unique across all files
    title = "Name resolution (DNS)"
    fallback = false                 # exactly one file sets true: the generic triage
    requests = false                 # true: claimed from a service request ("needs a
                                     #   laptop"), not only from a fault

    [match.keywords]                 # phrase = weight; plurals match automatically
    "dns" = 5                        # weight 5 or more: specific enough on its own;
    "resolve" = 2                    # below: needs a second, different signal
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
    command = "ipconfig /all"        # optional; {user} {upn} {device} {ip} {server} are
    shell = "cmd"                    #   filled from the session or shown as <user>
    kind = "check"                   # check (default) | fix
    os = "windows"                   # where the command runs: windows | macos | linux |
                                     #   unix | any (admin side); guessed from the shell
    warning = ""                     # required for destructive commands
    done_if = ["dns servers are"]    # checks only: people reporting its result in these
                                     #   words means it was done (not proposed again)

    [[causes]]                       # most likely first, before any evidence
    id = "dns.server-down"
    title = "The DNS server service is down"
    why = "..."
    checked_by = ["dns.server-health"]   # step ids that check it
    fixed_by = ["dns.start-service"]     # step ids that fix it (kind = "fix")
    supported_if = ["service was stopped"]   # reported facts that point here
    ruled_out_if = ["dns service is running"]  # reported facts that point away

Evidence has a direction. What people reported (the problem, the escalation reason, the
technician's messages, outcomes recorded on tasks; never FlowPilot's own words or the
handoff briefing it wrote) supports a cause when it states one of its facts, rules it out
when it states the opposite or says the thing is fine, and confirms it when a fix for it
worked. A confirmed cause leads, then supported ones, then the rest; the assessment names
the strongest fact behind its first cause.
"""

from flowpilot.assistants.offline.knowledge import (
    KNOWLEDGE_DIR,
    VALID_SHELLS,
    Knowledge,
    KnowledgeError,
    default_knowledge,
    load_knowledge,
)
from flowpilot.assistants.offline.reasoning import Classification, classify
from flowpilot.assistants.offline.text import normalize, words
from flowpilot.assistants.offline.wording import OfflineAssistant

__all__ = [
    "KNOWLEDGE_DIR",
    "VALID_SHELLS",
    "Classification",
    "Knowledge",
    "KnowledgeError",
    "OfflineAssistant",
    "classify",
    "default_knowledge",
    "load_knowledge",
    "normalize",
    "words",
]
