"""Build every account's weekly analytics rollups now (after a deploy or a restore).

The worker keeps them current afterwards; until a week is built its figures are computed
live, so running this only makes long windows fast sooner.
"""

from django.core.management.base import BaseCommand
from django.utils import timezone

from analytics import rollups


class Command(BaseCommand):
    help = "Build or rebuild the weekly analytics rollups of every account."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--rebuild", action="store_true", help="Rebuild every week, not only missing ones."
        )

    def handle(self, *args, rebuild: bool = False, **options) -> None:
        from analytics.models import WeeklyRollup

        if rebuild:
            WeeklyRollup.objects.all().delete()
        written = rollups.refresh_all(now=timezone.now(), build_limit=None)
        self.stdout.write(f"{written} weeks written.")
