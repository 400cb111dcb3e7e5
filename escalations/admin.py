"""Admin views of escalation data: read-only, because every change of a handoff, its history
and its notifications goes through the handoff manager (escalations.actions).

The one field an operator may fix by hand is an email delivery's ``address`` (a user's typo,
docs/OPERATIONS.md); people themselves are managed in the User admin.
"""

from django.contrib import admin

from escalations.models import EmailDelivery, Handoff, HandoffEvent, HandoffView, Notification
from resolutionflow.admin import ReadOnlyAdminMixin


class HandoffEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = HandoffEvent
    extra = 0
    fields = ["kind", "actor", "created_at", "detail"]
    readonly_fields = fields


@admin.register(Handoff)
class HandoffAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "state", "urgency", "escalated_by", "claimed_by", "created_at"]
    list_filter = ["account", "state", "urgency"]
    list_select_related = ["account", "escalated_by", "claimed_by"]
    search_fields = ["reason", "session__problem"]
    readonly_fields = [f.name for f in Handoff._meta.fields]
    inlines = [HandoffEventInline]

    # Handoffs are born and change only through the handoff manager (escalations.actions).
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(HandoffEvent)
class HandoffEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["handoff", "account", "kind", "actor", "actor_role", "created_at"]
    list_filter = ["kind", "handoff__account"]
    list_select_related = ["handoff__account", "actor"]

    @admin.display(description="Account")
    def account(self, obj: HandoffEvent) -> str:
        return obj.handoff.account.name

    @admin.display(description="Role")
    def actor_role(self, obj: HandoffEvent) -> str:
        return obj.actor.get_role_display() if obj.actor else ""


@admin.register(HandoffView)
class HandoffViewAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["handoff", "user", "first_seen_at"]
    list_select_related = ["handoff", "user"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["text", "account", "recipient", "kind", "created_at", "read_at"]
    list_filter = ["account", "kind"]
    list_select_related = ["account", "recipient"]


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin):
    list_display = ["address", "handoff", "state", "attempts", "last_error", "sent_at"]
    list_filter = ["state"]
    list_select_related = ["handoff"]
    # The address stays editable: fixing a typo and queueing the row again is how a failed
    # or refused delivery is recovered (docs/OPERATIONS.md).
    readonly_fields = [
        f.name for f in EmailDelivery._meta.fields if f.name not in ("id", "address")
    ]

    # The rows are written by the escalate transaction, one per recipient.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
