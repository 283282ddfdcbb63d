"""Reconciliation: make the database and the provider agree, and keep the report for the dashboard.

``compute_drift`` (``machines/reconcile.py``, pure) decides; this module acts on its report:

- orphans (ours at the provider, unknown or ended here) are destroyed at the provider;
- ghosts (live here, gone at the provider) are marked destroyed and their sessions end ``orphaned``;
- mismatches (both know the machine, in different states) take the provider's state, and a machine
  the provider reports failed ends its session ``failed``;
- machines stuck in ``destroying`` (a destroy whose provider call failed) are destroyed again, and
  ``failed`` ones the provider no longer has become ``destroyed``: their history ends and they stop
  being priced (a failed machine that still exists pays storage, one that is gone pays nothing).

Every finding is kept a day as a ``DriftFinding`` (what was found, what was done and why, what it cost),
and the machine it concerns gets a ``MachineEvent`` saying so, which its session's page lists.

One instance reconciles at a time (an advisory lock on PostgreSQL); a second one skips the run.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Q

from machines.models import (
    GONE_STATES,
    DriftAction,
    DriftFinding,
    DriftKind,
    EventSource,
    Machine,
    MachineEvent,
    MachineState,
    ReconcileReport,
)
from machines.providers import get_provider
from machines.providers.base import MANAGED_KEY, SESSION_KEY, ProviderError, ProviderMachine
from machines.providers.base import MachineState as ProviderState
from machines.reconcile import DEFAULT_GRACE, DriftReport, KnownMachine, Orphan, compute_drift, drift_sentence
from machines.services.lifecycle import end_sessions_of_machines, machine_transition
from realtime_bridge import events, publish
from velocity.locks import instance_lock

logger = logging.getLogger(__name__)

STUCK_DESTROYING_AFTER = timedelta(minutes=1)
UNFINISHED_STATES = (MachineState.DESTROYING, MachineState.FAILED)
REPORTS_KEPT_FOR = timedelta(days=7)
FINDINGS_KEPT_FOR = timedelta(days=1)
DETAIL_LIMIT = 50
LIVE_DB_STATES = [s for s in MachineState.values if s not in GONE_STATES]
ORPHAN_WHY = {"unknown": "unknown to the database", "ended": "its machine had already ended here"}


@dataclass
class Found:
    """A finding of this run, stored with the report."""

    kind: DriftKind
    action: DriftAction
    provider_machine_id: str
    machine: Machine | None
    why: str = ""
    hourly_cost: Decimal = Decimal(0)
    cost_so_far: Decimal = Decimal(0)
    running_since: datetime | None = None
    session_id: uuid.UUID | None = None
    retried: bool = False  # a destroy left unfinished by an earlier run, finished now
    noted: bool = False  # the machine's state change already carries the finding in its event
    to_state: str = ""  # a mismatch: the provider's state, which the row takes

    def event_detail(self, now: datetime, **extra: Any) -> dict[str, Any]:
        """What the machine's event records: the sentence the dashboard shows, and the finding's kind."""
        return {**extra, "reconcile": self.sentence(now), "kind": str(self.kind), "action": str(self.action)}

    def sentence(self, now: datetime) -> str:
        running_for = now - self.running_since if self.running_since else None
        name = self.provider_machine_id or (str(self.machine.id) if self.machine else "?")
        return drift_sentence(
            kind=self.kind,
            action=self.action,
            name=name,
            why=self.why,
            hourly_cost=self.hourly_cost,
            running_for=running_for,
        )


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
    found = _destroy_orphans(drift, rows, now=now)
    found += _bury_ghosts(drift, rows, now=now)
    found += _apply_mismatches(drift, rows, now=now, grace=grace)
    found += _finish_unfinished(kind, at_provider, now=now)
    retried = sum(1 for f in found if f.retried)
    report = _store(kind, drift, seen=len(at_provider), retried=retried, now=now)
    _store_findings(report, found, now=now)
    ReconcileReport.objects.filter(at__lt=now - REPORTS_KEPT_FOR).delete()
    DriftFinding.objects.filter(found_at__lt=now - FINDINGS_KEPT_FOR).delete()
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


def _destroy_orphans(drift: DriftReport, rows: dict[str, Machine], *, now: datetime) -> list[Found]:
    """Destroy every orphan at the provider; a row stuck in ``destroying`` is finished on the way."""
    provider = get_provider(settings.MACHINE_PROVIDER)
    found = []
    for orphan in drift.orphans:
        row = rows.get(orphan.known.id) if orphan.known else None
        try:
            provider.destroy(orphan.machine.id, force=True)
        except ProviderError as exc:
            logger.warning("orphan destroy failed", extra={"provider_id": orphan.machine.id, "error": str(exc)})
            found.append(_orphan_found(orphan, row, DriftAction.LEFT, f"the destroy failed: {exc}"[:300]))
            continue
        logger.info("orphan destroyed", extra={"provider_id": orphan.machine.id, "reason": str(orphan.reason)})
        finding = _orphan_found(orphan, row, DriftAction.DESTROYED, ORPHAN_WHY[orphan.reason])
        publish.publish_on_commit(_orphan_event(finding, str(orphan.reason)))
        if row is not None and row.state in UNFINISHED_STATES:
            finding.retried = finding.noted = machine_transition(
                machine=row,
                to_state=MachineState.DESTROYED,
                source=EventSource.SCHEDULE,
                detail=finding.event_detail(now),
                now=now,
            )
        found.append(finding)
    return found


def _orphan_found(orphan: Orphan, row: Machine | None, action: DriftAction, why: str) -> Found:
    return Found(
        kind=DriftKind.ORPHAN,
        action=action,
        provider_machine_id=orphan.machine.id,
        machine=row,
        why=why,
        hourly_cost=orphan.hourly_cost,
        cost_so_far=orphan.cost_so_far,
        running_since=orphan.machine.created_at,
        session_id=_session_id(orphan.machine.metadata.get(SESSION_KEY), row),
    )


def _orphan_event(finding: Found, reason: str) -> events.Event:
    return events.machine_orphan_destroyed(
        provider_machine_id=finding.provider_machine_id,
        reason=reason,
        hourly_cost_usd=str(finding.hourly_cost),
        cost_so_far_usd=str(finding.cost_so_far),
        machine_id=str(finding.machine.id) if finding.machine is not None else None,
        session_id=str(finding.session_id) if finding.session_id else None,
    )


def _session_id(tagged: str | None, row: Machine | None) -> uuid.UUID | None:
    """The session the machine served: from its provider tag, else from the database."""
    try:
        return uuid.UUID(tagged) if tagged else _row_session_id(row)
    except ValueError:
        return _row_session_id(row)


def _row_session_id(row: Machine | None) -> uuid.UUID | None:
    session = row.latest_session if row is not None else None
    return session.id if session is not None else None


def _bury_ghosts(drift: DriftReport, rows: dict[str, Machine], *, now: datetime) -> list[Found]:
    buried: list[Found] = []
    why = "gone at the provider; marked destroyed, its session ended (orphaned)"
    for ghost in drift.ghosts:
        row = rows[ghost.id]
        finding = _row_found(DriftKind.GHOST, DriftAction.BURIED, row, why, noted=True)
        if machine_transition(
            machine=row,
            to_state=MachineState.DESTROYED,
            source=EventSource.SCHEDULE,
            from_states=LIVE_DB_STATES,
            detail=finding.event_detail(now, reason="gone at the provider"),
            now=now,
        ):
            buried.append(finding)
    if buried:
        logger.warning("ghost machines marked destroyed", extra={"count": len(buried)})
        end_sessions_of_machines(
            [f.machine.id for f in buried if f.machine],
            reason="orphaned",
            now=now,
            source=EventSource.SCHEDULE,
            detail="machine gone at the provider",
        )
    return buried


def _row_found(kind: DriftKind, action: DriftAction, row: Machine, why: str, *, noted: bool = False) -> Found:
    return Found(
        kind=kind,
        action=action,
        provider_machine_id=row.provider_machine_id,
        machine=row,
        why=why,
        session_id=_row_session_id(row),
        noted=noted,
    )


def _apply_mismatches(drift: DriftReport, rows: dict[str, Machine], *, now: datetime, grace: timedelta) -> list[Found]:
    found, failed = [], []
    for mismatch in drift.mismatches:
        row = rows[mismatch.known.id]
        if now - row.updated_at < grace:
            continue  # a launch or a stop in flight: the provider may be a step ahead of us (not drift yet)
        finding = _mismatch_found(row, str(mismatch.machine.state))
        detail = finding.event_detail(now)
        if machine_transition(
            machine=row, to_state=finding.to_state, source=EventSource.PROVIDER, detail=detail, now=now
        ):
            found.append(finding)
            if finding.action == DriftAction.ENDED:
                failed.append(row.id)
    if failed:
        end_sessions_of_machines(
            failed, reason="failed", now=now, source=EventSource.PROVIDER, detail="machine failed at the provider"
        )
    return found


def _mismatch_found(row: Machine, state: str) -> Found:
    """The row takes the provider's ``state``; a machine failed there ends its session."""
    if state == MachineState.FAILED:
        finding = _row_found(DriftKind.MISMATCH, DriftAction.ENDED, row, "failed at the provider; its session ended")
    else:
        why = f"{row.state} → {state}, as the provider says"
        finding = _row_found(DriftKind.MISMATCH, DriftAction.UPDATED, row, why)
    finding.noted, finding.to_state = True, state
    return finding


def _finish_unfinished(kind: str, at_provider: list[ProviderMachine], *, now: datetime) -> list[Found]:
    """Rows left ``destroying`` or ``failed`` whose machine the provider no longer has are destroyed for good."""
    present = {m.id for m in at_provider}
    stuck = Machine.objects.filter(
        provider=kind, state__in=UNFINISHED_STATES, updated_at__lt=now - STUCK_DESTROYING_AFTER
    ).exclude(provider_machine_id__in=present)
    gone, destroyed, source = {"reason": "gone at the provider"}, MachineState.DESTROYED, EventSource.SCHEDULE
    why = "left {state} here and gone at the provider: marked destroyed"
    found = []
    for row in stuck:
        finding = _row_found(DriftKind.UNFINISHED, DriftAction.BURIED, row, why.format(state=row.state), noted=True)
        finding.retried = True
        if machine_transition(
            machine=row, to_state=destroyed, source=source, detail=finding.event_detail(now, **gone), now=now
        ):
            found.append(finding)
    return found


def _store_findings(report: ReconcileReport, found: list[Found], *, now: datetime) -> None:
    """Keep each finding for the dashboard and tell the machine's history what reconciliation did."""
    DriftFinding.objects.bulk_create([_finding(report, f, now=now) for f in found])
    for f in found:
        if f.machine is not None and not f.noted:  # no state change carried it: a note in the same state
            state = f.machine.state
            MachineEvent.objects.create(
                machine=f.machine,
                from_state=state,
                to_state=state,
                source=EventSource.SCHEDULE,
                detail=f.event_detail(now),
                at=now,
            )


def _finding(report: ReconcileReport, f: Found, *, now: datetime) -> DriftFinding:
    return DriftFinding(
        report=report,
        found_at=now,
        provider=report.provider,
        kind=f.kind,
        provider_machine_id=f.provider_machine_id,
        machine=f.machine,
        session_id=f.session_id,
        action=f.action,
        why=f.why[:300],
        hourly_cost=f.hourly_cost.quantize(Decimal("0.000001")),
        cost_so_far=f.cost_so_far.quantize(Decimal("0.000001")),
        running_since=f.running_since,
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
