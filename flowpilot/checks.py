"""System checks: the offline engine's knowledge base must load before anything is served.

``manage.py check`` (and ``migrate``, which ``make run`` and every deploy run first) fails
with the file and the problem named, instead of every chat reply failing at runtime.
"""

from django.core.checks import Error, register

from flowpilot.assistants.offline import KnowledgeError, load_knowledge


@register()
def knowledge_loads(app_configs, **kwargs) -> list[Error]:
    try:
        load_knowledge()
    except KnowledgeError as error:
        return [
            Error(
                f"The FlowPilot knowledge base does not load: {error}",
                hint="Fix the file named above (flowpilot/knowledge/*.toml).",
                id="flowpilot.E001",
            )
        ]
    return []
