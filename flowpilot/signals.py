"""FlowPilot's one explicit signal up the dependency line.

flowpilot never imports escalations. When something happens in a session, flowpilot's
action sends ``session_activity`` saying precisely what, and the handoff manager decides
whether that is a claimer's first action (and tells whoever follows the session).
"""

from django.dispatch import Signal

# Sent inside the action's transaction with: session, user (who acted, or whose message
# FlowPilot answered, or None) and kind, one of ACTIVITY_KINDS.
session_activity = Signal()

ACTIVITY_KINDS = {
    "message": "a person wrote a message in the chat",
    "briefing": "the handoff briefing posted for its claimer by 'Get AI analysis'",
    "reply": "FlowPilot answered",
    "task_added": "a person added a step to the lane by hand",
    "step_opened": "a suggested step was put in the lane ('Open in Tasks panel')",
    "task_recorded": "a person recorded a step's status or outcome",
    "task_unchanged": "a step was saved with the status and outcome it had",
    "task_moved": "a step was moved up or down the lane",
}
