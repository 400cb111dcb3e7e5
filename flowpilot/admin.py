"""Admin views of FlowPilot data: for reading and for correcting a session's wording only.

Who owns a session, its status and who it is escalated to are set by FlowPilot and the handoff
manager (escalations.actions), never by hand: an edit here would bypass the queue, the
notifications and the checks that keep a claimer in their own account. Messages and tasks are
written in the chat. People are managed in the User admin.
"""

from django.contrib import admin

from flowpilot.models import Message, Session, Task
from resolutionflow.admin import ReadOnlyAdminMixin


class TaskInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Task
    extra = 0
    fields = ["position", "title", "status", "outcome", "source"]
    readonly_fields = fields


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "account",
        "owner",
        "owner_role",
        "status",
        "escalated_to",
        "updated_at",
    ]
    list_filter = ["account", "status"]
    list_select_related = ["account", "owner", "escalated_to"]
    search_fields = ["problem", "customer", "device"]
    readonly_fields = ["account", "owner", "status", "escalated_to", "created_at", "updated_at"]
    inlines = [TaskInline]

    # Sessions start in FlowPilot (flowpilot.actions.start_session), in their owner's account.
    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Owner role")
    def owner_role(self, obj: Session) -> str:
        return obj.owner.get_role_display()


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "session", "account", "role", "engine", "created_at"]
    list_filter = ["role", "engine", "session__account"]
    list_select_related = ["session__account"]

    @admin.display(description="Account")
    def account(self, obj: Message) -> str:
        return obj.session.account.name


@admin.register(Task)
class TaskAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["title", "session", "account", "status", "source", "updated_at"]
    list_filter = ["status", "source", "session__account"]
    list_select_related = ["session__account"]

    @admin.display(description="Account")
    def account(self, obj: Task) -> str:
        return obj.session.account.name
