import uuid
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from velocity.auth import ROLES, issue_token


class Command(BaseCommand):
    help = "Print a Supabase-style access token signed with the configured secret (for tools and tests)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--sub", required=True, help="The user id (UUID) the token speaks for.")
        parser.add_argument("--role", default="authenticated", choices=ROLES)
        parser.add_argument("--ttl", type=int, default=3600, help="Lifetime in seconds (default 3600).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            sub = uuid.UUID(options["sub"])
        except ValueError as exc:
            raise CommandError("--sub must be a UUID") from exc
        if options["ttl"] <= 0:
            raise CommandError("--ttl must be a positive number of seconds")
        self.stdout.write(issue_token(sub=sub, role=options["role"], ttl=options["ttl"]))
