from django.contrib import admin

from flowpilot.models import Message, Session, Task


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    fields = ["position", "title", "status", "outcome", "source"]


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
    raw_id_fields = ["owner", "escalated_to"]
    inlines = [TaskInline]

    @admin.display(description="Owner role")
    def owner_role(self, obj: Session) -> str:
        return obj.owner.get_role_display()


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "session", "account", "role", "engine", "created_at"]
    list_filter = ["role", "engine", "session__account"]
    list_select_related = ["session__account"]
    raw_id_fields = ["session", "author"]

    @admin.display(description="Account")
    def account(self, obj: Message) -> str:
        return obj.session.account.name


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["title", "session", "account", "status", "source", "updated_at"]
    list_filter = ["status", "source", "session__account"]
    list_select_related = ["session__account"]
    raw_id_fields = ["session", "created_by"]

    @admin.display(description="Account")
    def account(self, obj: Task) -> str:
        return obj.session.account.name
