"""The handoff manager's one explicit signal up the dependency line (analytics listens).

Nothing imports analytics. When an action changes a handoff (escalate, claim, first action,
take-over mode, release, resolve), it sends ``handoff_changed`` inside its transaction, so
analytics can mark the week of that handoff for a rebuild of its rollup.
"""

from django.dispatch import Signal

# Sent with: handoff (the changed row; its account_id and created_at say which week).
handoff_changed = Signal()
