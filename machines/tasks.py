"""django-q2 jobs: plain, idempotent functions that call one service and return a one-line summary."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from machines import services


def reconcile_machines() -> str:
    report = services.machine_reconcile(now=timezone.now())
    if report is None:
        return "skipped: another instance is reconciling"
    if report.error:
        return f"failed to list machines: {report.error}"
    return (
        f"{report.seen} machine(s) at {report.provider}: destroyed {report.orphans} orphan(s) "
        f"(${report.orphan_hourly_cost:.4f}/h), buried {report.ghosts} ghost(s), "
        f"{report.mismatches} state mismatch(es), finished {report.retried} stuck destroy(s)"
    )


def refill_warm_pool() -> str:
    target, created, destroyed = services.machine_pool_autosize(
        now=timezone.now(), memory_mb=settings.PREVIEW_MACHINE_MEMORY_MB
    )
    return f"warm pool of {target.size}: created {created}, destroyed {destroyed}"


def rollup_costs() -> str:
    written = services.cost_rollup_refresh(now=timezone.now())
    if written is None:
        return "skipped: another instance is rolling up"
    return f"wrote {written} cost rollup row(s) for today and yesterday"
