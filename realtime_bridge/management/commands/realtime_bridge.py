"""`manage.py realtime_bridge`: mirror the Supabase project's realtime traffic (client mode)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from realtime_bridge.bridge import run_bridge


class Command(BaseCommand):
    help = "Join project:{id} on the Supabase project for every live session and mirror it to operators."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between reconciliations")
        parser.add_argument("--lease-ttl", type=float, default=15.0, help="seconds before a dead holder is replaced")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SUPABASE_URL or not settings.SUPABASE_SERVICE_ROLE_KEY:
            raise CommandError("SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are required in client mode")
        asyncio.run(self._run(options["interval"], options["lease_ttl"]))

    async def _run(self, interval: float, ttl: float) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        self.stdout.write("realtime bridge: running")
        await run_bridge(stop, interval=interval, ttl=ttl)
        self.stdout.write("realtime bridge: stopped")
