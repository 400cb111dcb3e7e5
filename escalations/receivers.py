"""Listens to flowpilot's explicit signal: the claimer's first action, for the metric, and
a live ``session-activity`` event for the chat pages following an escalated session."""

from django.dispatch import receiver

from flowpilot.signals import session_activity


@receiver(session_activity, dispatch_uid="escalations.first_action")
def record_first_action_on_activity(sender, *, session, user, kind: str, **kwargs) -> None:
    from escalations.actions import announce_session_activity, record_first_action

    record_first_action(session=session, user=user, kind=kind)  # decides what counts
    announce_session_activity(session=session, kind=kind, by=user)
