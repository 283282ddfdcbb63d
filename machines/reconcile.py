"""Drift between what the provider runs and what the database believes: pure data in and out.

The reconcile task lists our machines at the provider, loads the database's machines, calls
``compute_drift`` and acts on the report (destroy orphans, end ghosts, record state changes).
Keeping the decision pure makes it testable without a provider or a database.

- An **orphan** is a machine tagged as ours at the provider that the database does not know or
  has already ended: it costs money and serves nobody.
- A **ghost** is a machine the database believes is live that the provider no longer has.
- A **mismatch** is a machine both know, in different states.

Machines younger than ``grace`` are left out of orphans and ghosts: a create may be between
the provider's answer and the database commit, and provider listings can lag a little.
Machines without our ``velocity_managed`` tag are never reported: they are not ours to touch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from machines.pricing import COMPUTE_STATES, DEFAULT_ROOTFS_GB, STORAGE_STATES, running_cost, stopped_cost
from machines.providers.base import LIVE_STATES, Guest, MachineState, ProviderMachine

DEFAULT_GRACE = timedelta(minutes=2)
HOUR = 3600


@dataclass(frozen=True)
class KnownMachine:
    """The database's view of one machine."""

    id: str
    name: str
    provider_id: str | None  # None when the create's answer never arrived
    state: MachineState
    created_at: datetime
    ended_at: datetime | None = None

    @property
    def is_live(self) -> bool:
        return self.ended_at is None and self.state in LIVE_STATES


class OrphanReason(StrEnum):
    UNKNOWN = "unknown"
    ENDED = "ended"


@dataclass(frozen=True)
class Orphan:
    machine: ProviderMachine
    reason: OrphanReason
    known: KnownMachine | None
    hourly_cost: Decimal
    # Estimated as if the current state held since the database ended it (or, when the
    # database never knew it, since it was created).
    cost_so_far: Decimal


@dataclass(frozen=True)
class Mismatch:
    known: KnownMachine
    machine: ProviderMachine


@dataclass(frozen=True)
class DriftReport:
    orphans: tuple[Orphan, ...]
    ghosts: tuple[KnownMachine, ...]
    mismatches: tuple[Mismatch, ...]

    @property
    def is_clean(self) -> bool:
        return not (self.orphans or self.ghosts or self.mismatches)

    @property
    def orphan_hourly_cost(self) -> Decimal:
        return sum((o.hourly_cost for o in self.orphans), Decimal(0))

    @property
    def orphan_cost_so_far(self) -> Decimal:
        return sum((o.cost_so_far for o in self.orphans), Decimal(0))


def compute_drift(
    provider_machines: Iterable[ProviderMachine],
    db_machines: Iterable[KnownMachine],
    *,
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
    rootfs_gb: Decimal = DEFAULT_ROOTFS_GB,
) -> DriftReport:
    """Compare the provider's machines with the database's and price the orphans."""
    ours = [m for m in provider_machines if m.is_managed and m.state in LIVE_STATES]
    known = list(db_machines)
    by_provider_id = {k.provider_id: k for k in known if k.provider_id}
    # A record without a provider id (its create's answer was lost) is matched by name.
    by_name = {k.name: k for k in known if not k.provider_id}
    orphans: list[Orphan] = []
    mismatches: list[Mismatch] = []
    matched: set[str] = set()
    for machine in ours:
        record = by_provider_id.get(machine.id) or by_name.get(machine.name)
        if record is not None:
            matched.add(record.id)
        if record is not None and record.is_live:
            if record.state is not machine.state:
                mismatches.append(Mismatch(record, machine))
        elif not _is_young(machine.created_at, now, grace):
            orphans.append(_orphan(machine, record, now=now, rootfs_gb=rootfs_gb))
    ghosts = [k for k in known if k.is_live and k.id not in matched and not _is_young(k.created_at, now, grace)]
    return DriftReport(tuple(orphans), tuple(ghosts), tuple(mismatches))


def hourly_cost(machine: ProviderMachine, *, rootfs_gb: Decimal = DEFAULT_ROOTFS_GB) -> Decimal:
    """What one hour of the machine in its current state costs."""
    if machine.state in COMPUTE_STATES:
        guest = machine.guest or Guest()  # a summary listing omits the guest: assume the default size
        return running_cost(guest.cpu_kind, guest.cpus, guest.memory_mb, machine.region, HOUR)
    if machine.state in STORAGE_STATES:
        return stopped_cost(rootfs_gb, HOUR)
    return Decimal(0)


def _orphan(machine: ProviderMachine, record: KnownMachine | None, *, now: datetime, rootfs_gb: Decimal) -> Orphan:
    reason = OrphanReason.UNKNOWN if record is None else OrphanReason.ENDED
    since = record.ended_at if record is not None and record.ended_at else machine.created_at
    hours = Decimal(str(max((now - since).total_seconds(), 0))) / HOUR if since else Decimal(0)
    rate = hourly_cost(machine, rootfs_gb=rootfs_gb)
    return Orphan(machine, reason, record, hourly_cost=rate, cost_so_far=rate * hours)


def _is_young(created_at: datetime | None, now: datetime, grace: timedelta) -> bool:
    return created_at is not None and now - created_at < grace


KIND_WORDS = {
    "orphan": "orphan",
    "ghost": "ghost",
    "mismatch": "mismatched machine",
    "unfinished": "unfinished machine",
}


def drift_sentence(
    *,
    kind: str,
    action: str,
    name: str,
    why: str = "",
    hourly_cost: Decimal = Decimal(0),
    running_for: timedelta | None,
) -> str:
    """What reconciliation found and did, in the past tense, for the dashboard and the machine's events:
    ``Destroyed orphan fly-abc ($0.0081/h, running 4 min): unknown to the database``."""
    facts = [f"${hourly_cost:.4f}/h"] if hourly_cost > 0 else []
    if running_for is not None:
        facts.append(f"running {duration_words(running_for)}")
    sentence = f"{action.capitalize()} {KIND_WORDS.get(kind, kind)} {name}"
    sentence += f" ({', '.join(facts)})" if facts else ""
    return f"{sentence}: {why}" if why else sentence


def duration_words(span: timedelta) -> str:
    """``45 s``, ``4 min``, ``2 h 5 min``, ``3 d 4 h``: as precise as an operator needs."""
    seconds = max(int(span.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < HOUR:
        return f"{seconds // 60} min"
    if seconds < 24 * HOUR:
        return f"{seconds // HOUR} h {seconds % HOUR // 60} min"
    return f"{seconds // (24 * HOUR)} d {seconds % (24 * HOUR) // HOUR} h"
