from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from resolutionflow.forms import AdminSignInForm
from resolutionflow.models import Account, OutboxEvent, User


class ReadOnlyAdminMixin:
    """View only: no add, no change, no delete. For rows that only actions write."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "display_name", "account", "role", "email", "is_active"]
    list_filter = ["account", "role", "is_active", "is_staff"]
    list_select_related = ["account"]
    search_fields = ["username", "display_name", "email"]
    fieldsets = [
        *DjangoUserAdmin.fieldsets,
        ("ResolutionFlow", {"fields": ["account", "role", "display_name"]}),
    ]
    add_fieldsets = [
        *DjangoUserAdmin.add_fieldsets,
        ("ResolutionFlow", {"fields": ["account", "role", "display_name"]}),
    ]


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = ["event_type", "channel", "created_at", "published_at", "attempts"]
    list_filter = ["event_type"]
    readonly_fields = ["channel", "event_type", "data", "created_at", "published_at", "attempts"]


# /admin/login/ counts failures and locks out like the app's sign-in page.
admin.site.login_form = AdminSignInForm
