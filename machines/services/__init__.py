"""Writes with side effects on machines: lifecycle, warm pool, reconciliation, cost rollups.

Callers import from here (``from machines.services import machine_destroy``); the modules behind it are
an implementation detail.
"""

from machines.services.cost import cost_rollup_refresh
from machines.services.lifecycle import (
    agent_environment,
    end_sessions_of_machines,
    machine_create,
    machine_destroy,
    machine_get_by_token,
    machine_key_seconds,
    machine_kill,
    machine_launch,
    machine_prepare,
    machine_preview_url,
    machine_realtime_key,
    machine_replay_header,
    machine_restart,
    machine_stop_all_local,
    machine_transition,
)
from machines.services.pool import (
    machine_claim_warm,
    machine_pool_autosize,
    machine_pool_enqueue_refill,
    machine_pool_refill,
)
from machines.services.reconcile import machine_reconcile

__all__ = [
    "agent_environment",
    "cost_rollup_refresh",
    "end_sessions_of_machines",
    "machine_claim_warm",
    "machine_create",
    "machine_destroy",
    "machine_get_by_token",
    "machine_key_seconds",
    "machine_kill",
    "machine_launch",
    "machine_pool_autosize",
    "machine_pool_enqueue_refill",
    "machine_pool_refill",
    "machine_prepare",
    "machine_preview_url",
    "machine_realtime_key",
    "machine_reconcile",
    "machine_replay_header",
    "machine_restart",
    "machine_stop_all_local",
    "machine_transition",
]
