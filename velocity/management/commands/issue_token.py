import uuid
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from velocity.auth import ROLES, SERVICE_ROLE, issue_token


class Command(BaseCommand):
    help = "Print a Supabase-style access token signed with the configured secret (for tools and tests)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--sub", help="The user id (UUID) the token speaks for (none for --role anon).")
        parser.add_argument("--role", default="authenticated", choices=ROLES)
        parser.add_argument("--ttl", type=int, default=3600, help="Lifetime in seconds (default 3600).")

    def handle(self, *args: Any, **options: Any) -> None:
        sub = self._sub(options["sub"], options["role"])
        if options["ttl"] <= 0:
            raise CommandError("--ttl must be a positive number of seconds")
        self.stdout.write(issue_token(sub=sub, role=options["role"], ttl=options["ttl"]))

    def _sub(self, raw: str | None, role: str) -> uuid.UUID | None:
        """Users need a subject; the anon key must not have one (every door refuses such a token)."""
        if role == "anon":
            if raw:
                raise CommandError("an anon token has no --sub")
            return None
        if not raw and role == SERVICE_ROLE:
            return None
        if not raw:
            raise CommandError(f"--sub is required for --role {role}")
        try:
            return uuid.UUID(raw)
        except ValueError as exc:
            raise CommandError("--sub must be a UUID") from exc
