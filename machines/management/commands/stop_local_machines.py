from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from machines.services import machine_stop_all_local


class Command(BaseCommand):
    help = "Destroy every local-provider machine and end its session (make up runs this when it stops)."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.MACHINE_PROVIDER != "local":
            self.stdout.write("provider is not local: nothing to stop")
            return
        stopped = machine_stop_all_local(now=timezone.now())
        self.stdout.write(f"stopped {stopped} local machine(s)")
