"""Admin views of escalation data. Read-mostly: state changes go through the handoff manager."""

from django.contrib import admin

from escalations.models import EmailDelivery, Handoff, HandoffEvent, HandoffView, Notification


class HandoffEventInline(admin.TabularInline):
    model = HandoffEvent
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "actor", "created_at", "detail"]


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
class HandoffEventAdmin(admin.ModelAdmin):
    list_display = ["handoff", "account", "kind", "actor", "actor_role", "created_at"]
    list_filter = ["kind", "handoff__account"]
    list_select_related = ["handoff__account", "actor"]
    readonly_fields = ["handoff", "kind", "actor", "created_at", "detail"]

    # The transition history is written by the handoff manager only.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Account")
    def account(self, obj: HandoffEvent) -> str:
        return obj.handoff.account.name

    @admin.display(description="Role")
    def actor_role(self, obj: HandoffEvent) -> str:
        return obj.actor.get_role_display() if obj.actor else ""


@admin.register(HandoffView)
class HandoffViewAdmin(admin.ModelAdmin):
    list_display = ["handoff", "user", "first_seen_at"]
    raw_id_fields = ["handoff", "user"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["text", "account", "recipient", "kind", "created_at", "read_at"]
    list_filter = ["account", "kind"]
    list_select_related = ["account", "recipient"]
    raw_id_fields = ["recipient", "handoff"]


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(admin.ModelAdmin):
    list_display = ["address", "handoff", "state", "attempts", "last_error", "sent_at"]
    list_filter = ["state"]
    raw_id_fields = ["handoff", "recipient"]
