"""Accounts (tenants) and users with a role. The core knows no feature."""

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models


class Account(models.Model):
    """A customer of ResolutionFlow: an MSP or IT team. Every row belongs to one."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    TECHNICIAN = "technician", "Technician"
    ENGINEER = "engineer", "Engineer"
    ADMIN = "admin", "Admin"


class User(AbstractUser):
    """A person of one account, with one role.

    Superusers made by createsuperuser may have no account; they use the Django admin only.
    """

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="users", null=True, blank=True
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.TECHNICIAN)
    display_name = models.CharField(max_length=150, blank=True)

    objects = UserManager()

    class Meta:
        indexes = [models.Index(fields=["account", "role"])]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        """The name people see: display name, else full name, else username."""
        return self.display_name or self.get_full_name() or self.username

    @property
    def is_senior(self) -> bool:
        """Engineers and admins pick up escalations; technicians raise them."""
        return self.role in (Role.ENGINEER, Role.ADMIN)

    @property
    def is_account_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def initials(self) -> str:
        parts = self.name.split()
        return "".join(part[0] for part in parts[:2]).upper() or "?"


class OutboxEvent(models.Model):
    """A server-sent event recorded in the same transaction as the change it announces.

    Published after commit; if the broker is down, the drain task publishes it later, so a
    dead Redis never loses an event and never holds a request.
    """

    channel = models.CharField(max_length=200)
    event_type = models.CharField(max_length=60)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                name="outbox_unpublished",
                condition=models.Q(published_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.channel}"
