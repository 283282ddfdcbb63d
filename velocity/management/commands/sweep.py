from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from velocity.schedules import SCHEDULES


class Command(BaseCommand):
    help = "Run the scheduled jobs now and print what each did."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--only", choices=[spec.name for spec in SCHEDULES], help="Run just this job.")

    def handle(self, *args: Any, **options: Any) -> None:
        specs = [spec for spec in SCHEDULES if options["only"] in (None, spec.name)]
        if not specs:
            raise CommandError("no schedule matches")
        for spec in specs:
            summary = import_string(spec.func)()
            self.stdout.write(f"{spec.name}: {summary}")
