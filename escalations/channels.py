"""Event-stream channels: names derived on the server, read access checked per user.

Channels:
- ``queue-<account id>``: the account's escalation queue (engineers and admins of it);
- ``user-<user id>``: one person's notifications (that person only);
- ``handoff-<uuid>``: one handoff's updates (engineers and admins of its account, and
  the technician who escalated it).
"""

import re
import uuid

from django_eventstream.channelmanager import ChannelManagerBase

from resolutionflow.models import User

CHANNEL_PATTERN = re.compile(r"^(queue|user|handoff)-([0-9a-f-]{1,36})$")


def queue_channel(account_id: int) -> str:
    return f"queue-{account_id}"


def user_channel(user_id: int) -> str:
    return f"user-{user_id}"


def handoff_channel(handoff_id: uuid.UUID | str) -> str:
    return f"handoff-{handoff_id}"


def notification_channels(user: User) -> list[str]:
    """The bell's stream: the person's notifications; a senior's also carries the account's
    queue, whose claims answer every senior's "pick this up" item."""
    if user.is_senior:
        return [user_channel(user.pk), queue_channel(user.account_id)]
    return [user_channel(user.pk)]


def can_read_channel(user: User | None, channel: str) -> bool:
    """Whether ``user`` may receive events of ``channel``. Unknown names: never."""
    if user is None or not user.is_authenticated or user.account_id is None:
        return False
    match = CHANNEL_PATTERN.match(channel)
    if match is None:
        return False
    kind, key = match.groups()
    if kind == "queue":
        return user.is_senior and key == str(user.account_id)
    if kind == "user":
        return key == str(user.pk)
    from escalations.models import Handoff

    try:
        handoff_id = uuid.UUID(key)
    except ValueError:
        return False
    handoffs = Handoff.objects.filter(pk=handoff_id, account_id=user.account_id)
    if not user.is_senior:
        handoffs = handoffs.filter(escalated_by=user)
    return handoffs.exists()


class ChannelManager(ChannelManagerBase):
    """django-eventstream's hook: our views pass the channels; this re-checks every read."""

    def get_channels_for_request(self, request, view_kwargs) -> set[str]:
        return set(view_kwargs.get("channels", ()))

    def can_read_channel(self, user, channel: str) -> bool:
        return can_read_channel(user, channel)

    def is_channel_reliable(self, channel: str) -> bool:
        # Stored, so a reconnect with Last-Event-ID replays what was missed.
        return True
