"""Reconciliation: make the database and the provider agree, and keep the report for the dashboard.

``compute_drift`` (``machines/reconcile.py``, pure) decides; this module acts on its report:

- orphans (ours at the provider, unknown or ended here) are destroyed at the provider;
- ghosts (live here, gone at the provider) are marked destroyed and their sessions end ``orphaned``;
- mismatches (both know the machine, in different states) take the provider's state, and a machine
  the provider reports failed ends its session ``failed``;
- machines stuck in ``destroying`` (a destroy whose provider call failed) are destroyed again, and
  ``failed`` ones the provider no longer has become ``destroyed``: their history ends and they stop
  being priced (a failed machine that still exists pays storage, one that is gone pays nothing).

One instance reconciles at a time (an advisory lock on PostgreSQL); a second one skips the run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Q

from machines.models import GONE_STATES, EventSource, Machine, MachineState, ReconcileReport
from machines.providers import get_provider
from machines.providers.base import MANAGED_KEY, ProviderError, ProviderMachine
from machines.providers.base import MachineState as ProviderState
from machines.reconcile import DEFAULT_GRACE, DriftReport, KnownMachine, compute_drift
from machines.services.lifecycle import end_sessions_of_machines, machine_transition
from velocity.locks import instance_lock

logger = logging.getLogger(__name__)

STUCK_DESTROYING_AFTER = timedelta(minutes=1)
UNFINISHED_STATES = (MachineState.DESTROYING, MachineState.FAILED)
REPORTS_KEPT_FOR = timedelta(days=7)
DETAIL_LIMIT = 50
LIVE_DB_STATES = [s for s in MachineState.values if s not in GONE_STATES]


def machine_reconcile(*, now: datetime, grace: timedelta = DEFAULT_GRACE) -> ReconcileReport | None:
    """Reconcile once and store the report; None when another instance is reconciling right now."""
    with instance_lock("machines.reconcile") as held:
        if not held:
            return None
        return _reconcile(now=now, grace=grace)


def _reconcile(*, now: datetime, grace: timedelta) -> ReconcileReport:
    kind = settings.MACHINE_PROVIDER
    try:
        at_provider = get_provider(kind).list({MANAGED_KEY: "true"})
    except ProviderError as exc:
        logger.warning("reconcile could not list machines", extra={"error": str(exc)})
        return ReconcileReport.objects.create(at=now, provider=kind, error=str(exc)[:300])
    rows = {str(row.id): row for row in _known_rows(kind, at_provider)}
    drift = compute_drift(at_provider, [_known(row) for row in rows.values()], now=now, grace=grace)
    destroyed = _destroy_orphans(drift, rows, now=now)
    _bury_ghosts(drift, rows, now=now)
    _apply_mismatches(drift, rows, now=now, grace=grace)
    retried = destroyed + _finish_unfinished(kind, at_provider, now=now)
    report = _store(kind, drift, seen=len(at_provider), retried=retried, now=now)
    ReconcileReport.objects.filter(at__lt=now - REPORTS_KEPT_FOR).delete()
    return report


def _known_rows(kind: str, at_provider: list[ProviderMachine]) -> list[Machine]:
    """Every row live here, and every row (even ended) of a machine the provider still has."""
    seen = [m.id for m in at_provider]
    return list(
        Machine.objects.filter(provider=kind).filter(Q(state__in=LIVE_DB_STATES) | Q(provider_machine_id__in=seen))
    )


def _known(row: Machine) -> KnownMachine:
    ended = row.state in GONE_STATES or row.state == MachineState.DESTROYING
    return KnownMachine(
        id=str(row.id),
        name=f"velocity-{row.id.hex}",
        provider_id=row.provider_machine_id or None,
        state=ProviderState(row.state),
        created_at=row.created_at,
        ended_at=(row.destroyed_at or row.updated_at) if ended else None,
    )


def _destroy_orphans(drift: DriftReport, rows: dict[str, Machine], *, now: datetime) -> int:
    """Destroy every orphan; returns how many were rows stuck in ``destroying`` that are now finished."""
    provider = get_provider(settings.MACHINE_PROVIDER)
    finished = 0
    for orphan in drift.orphans:
        try:
            provider.destroy(orphan.machine.id, force=True)
        except ProviderError as exc:
            logger.warning("orphan destroy failed", extra={"provider_id": orphan.machine.id, "error": str(exc)})
            continue
        logger.info("orphan destroyed", extra={"provider_id": orphan.machine.id, "reason": str(orphan.reason)})
        row = rows.get(orphan.known.id) if orphan.known else None
        if row is not None and row.state in UNFINISHED_STATES:
            finished += machine_transition(
                machine=row, to_state=MachineState.DESTROYED, source=EventSource.SCHEDULE, now=now
            )
    return finished


def _bury_ghosts(drift: DriftReport, rows: dict[str, Machine], *, now: datetime) -> None:
    buried = []
    for ghost in drift.ghosts:
        row = rows[ghost.id]
        if machine_transition(
            machine=row,
            to_state=MachineState.DESTROYED,
            source=EventSource.SCHEDULE,
            from_states=LIVE_DB_STATES,
            detail={"reason": "gone at the provider"},
            now=now,
        ):
            buried.append(row.id)
    if buried:
        logger.warning("ghost machines marked destroyed", extra={"count": len(buried)})
        end_sessions_of_machines(
            buried, reason="orphaned", now=now, source=EventSource.SCHEDULE, detail="machine gone at the provider"
        )


def _apply_mismatches(drift: DriftReport, rows: dict[str, Machine], *, now: datetime, grace: timedelta) -> None:
    failed = []
    for mismatch in drift.mismatches:
        row = rows[mismatch.known.id]
        if now - row.updated_at < grace:
            continue  # a launch or a stop in flight: the provider may be a step ahead of us
        state = str(mismatch.machine.state)
        moved = machine_transition(machine=row, to_state=state, source=EventSource.PROVIDER, now=now)
        if moved and state == MachineState.FAILED:
            failed.append(row.id)
    if failed:
        end_sessions_of_machines(
            failed, reason="failed", now=now, source=EventSource.PROVIDER, detail="machine failed at the provider"
        )


def _finish_unfinished(kind: str, at_provider: list[ProviderMachine], *, now: datetime) -> int:
    """Rows left ``destroying`` or ``failed`` whose machine the provider no longer has are destroyed for good."""
    present = {m.id for m in at_provider}
    stuck = Machine.objects.filter(
        provider=kind, state__in=UNFINISHED_STATES, updated_at__lt=now - STUCK_DESTROYING_AFTER
    ).exclude(provider_machine_id__in=present)
    gone, destroyed, source = {"reason": "gone at the provider"}, MachineState.DESTROYED, EventSource.SCHEDULE
    return sum(
        machine_transition(machine=row, to_state=destroyed, source=source, detail=gone, now=now) for row in stuck
    )


def _store(kind: str, drift: DriftReport, *, seen: int, retried: int, now: datetime) -> ReconcileReport:
    detail: dict[str, Any] = {
        "orphans": [
            {"provider_id": o.machine.id, "reason": str(o.reason), "cost_so_far": str(o.cost_so_far)}
            for o in drift.orphans[:DETAIL_LIMIT]
        ],
        "ghosts": [g.id for g in drift.ghosts[:DETAIL_LIMIT]],
        "mismatches": [
            {"machine_id": m.known.id, "db": str(m.known.state), "provider": str(m.machine.state)}
            for m in drift.mismatches[:DETAIL_LIMIT]
        ],
    }
    return ReconcileReport.objects.create(
        at=now,
        provider=kind,
        seen=seen,
        orphans=len(drift.orphans),
        ghosts=len(drift.ghosts),
        mismatches=len(drift.mismatches),
        retried=retried,
        orphan_hourly_cost=drift.orphan_hourly_cost.quantize(Decimal("0.000001")),
        orphan_cost=drift.orphan_cost_so_far.quantize(Decimal("0.000001")),
        detail=detail,
    )
