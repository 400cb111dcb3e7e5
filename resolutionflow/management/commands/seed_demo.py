"""Create the demo accounts and people (idempotent); other apps add their demo data."""

import importlib
import importlib.util

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from resolutionflow.demo import ACCOUNTS, DEMO_PASSWORD, PERSONAS
from resolutionflow.models import Account, User


class Command(BaseCommand):
    help = "Create the demo accounts, users (password 'demo') and sample sessions. Idempotent."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="Run even with DEBUG off (never in production)."
        )

    def handle(self, *args, force: bool = False, **options) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with the password 'demo'; it refuses to run with "
                "DEBUG off. Pass --force if you really mean it."
            )
        with transaction.atomic():
            users = seed_people()
            # Each feature app may add its own demo data in <app>/demo.py: seed(users, stdout).
            for app_config in apps.get_app_configs():
                module_name = f"{app_config.name}.demo"
                if app_config.name == "resolutionflow" or not importlib.util.find_spec(module_name):
                    continue
                importlib.import_module(module_name).seed(users=users, stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))


def seed_people() -> dict[str, User]:
    """Create or refresh the demo accounts and users; return users by username."""
    accounts = {
        slug: Account.objects.update_or_create(slug=slug, defaults={"name": name})[0]
        for slug, name in ACCOUNTS.items()
    }
    users = {}
    for persona in PERSONAS:
        user, _created = User.objects.update_or_create(
            username=persona.username,
            defaults={
                "account": accounts[persona.account_slug],
                "role": persona.role,
                "display_name": persona.display_name,
                "first_name": persona.display_name.split()[0],
                "last_name": persona.display_name.split()[-1],
                "email": persona.email,
                "is_active": True,
            },
        )
        if not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        users[persona.username] = user
    return users
