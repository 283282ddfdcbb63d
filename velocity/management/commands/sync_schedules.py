from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django_q.models import Schedule

from velocity.schedules import SCHEDULES


class Command(BaseCommand):
    help = "Make django-q2's schedules match velocity/schedules.py (by name; running it twice changes nothing)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            for spec in SCHEDULES:
                wanted = {"func": spec.func, "schedule_type": Schedule.MINUTES, "minutes": spec.minutes, "repeats": -1}
                schedule = Schedule.objects.select_for_update().filter(name=spec.name).first()
                if schedule is None:
                    Schedule.objects.create(name=spec.name, **wanted)
                    self.stdout.write(f"created {spec.name}")
                    continue
                changed = [field for field, value in wanted.items() if getattr(schedule, field) != value]
                for field in changed:
                    setattr(schedule, field, wanted[field])
                if changed:
                    schedule.save(update_fields=changed)
                self.stdout.write(f"{'updated' if changed else 'unchanged'} {spec.name}")
            names = [spec.name for spec in SCHEDULES]
            stale, _ = Schedule.objects.filter(func__startswith="sessions.").exclude(name__in=names).delete()
            stale_m, _ = Schedule.objects.filter(func__startswith="machines.").exclude(name__in=names).delete()
            if stale or stale_m:
                self.stdout.write(f"removed {stale + stale_m} schedule(s) no longer declared")
