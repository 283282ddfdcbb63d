from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "What a deploy runs once before the new version takes traffic: migrate, then sync the schedules."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=options["verbosity"])
        call_command("sync_schedules", verbosity=options["verbosity"])
        self.stdout.write("release: migrated and schedules synced")
