"""Writes with side effects on preview sessions, by concern; import them from here.

``create`` (access, quota, the row, provisioning queued), ``lifecycle`` (activate, touch, end),
``provisioning`` (a warm or a new machine), ``agent_events`` (the agent's reports), ``liveness`` (heartbeats
and the agent watch's verdicts), ``sweeps`` (the schedules' writes), ``quotas``, ``budgets`` (the monthly
budget check), ``extend`` (the owner's "keep my preview"), ``policy`` (the dry-run's apply), ``activity``
(per-minute activity, the dry-run's history), ``blocks`` (an operator's stop on a user's new previews),
``flags`` and ``traces`` (agent log lines and file-sync events kept per session).
Every write announces itself through ``sessions.changes``.
"""

from sessions.services.activity import activity_flush, session_activity_prune
from sessions.services.agent_events import session_handle_agent_event
from sessions.services.blocks import user_block, user_unblock
from sessions.services.budgets import BUDGET_ACTOR, budgets_enforce, user_budget_act
from sessions.services.create import QuotaExceeded, UserBlocked, session_create
from sessions.services.extend import ExtendPastCap, SessionNotLive, session_extend
from sessions.services.flags import preview_flag_set, preview_flags_route
from sessions.services.lifecycle import (
    ACTIVITY_WRITE_INTERVAL,
    session_activate,
    session_end,
    session_end_for_machines,
    session_mark_step,
    session_touch,
    sessions_delete_finished,
)
from sessions.services.liveness import (
    agents_watch,
    session_apply_verdict,
    session_record_heartbeat,
    session_restart_agent,
    session_set_health,
)
from sessions.services.policy import PolicyInvalid, policy_apply
from sessions.services.provisioning import session_provision, session_reprovision_undelivered
from sessions.services.quotas import quota_reset, quota_set
from sessions.services.sweeps import (
    STATUS_FANOUT_LIMIT,
    session_end_expired,
    session_fail_stuck,
    session_reap_idle,
    session_release_finished_machines,
)
from sessions.services.traces import session_traces_trim, traces_flush

__all__ = [
    "ACTIVITY_WRITE_INTERVAL",
    "BUDGET_ACTOR",
    "STATUS_FANOUT_LIMIT",
    "ExtendPastCap",
    "PolicyInvalid",
    "QuotaExceeded",
    "SessionNotLive",
    "UserBlocked",
    "activity_flush",
    "agents_watch",
    "budgets_enforce",
    "policy_apply",
    "preview_flag_set",
    "preview_flags_route",
    "quota_reset",
    "quota_set",
    "session_activate",
    "session_activity_prune",
    "session_apply_verdict",
    "session_create",
    "session_end",
    "session_end_expired",
    "session_end_for_machines",
    "session_extend",
    "session_fail_stuck",
    "session_handle_agent_event",
    "session_mark_step",
    "session_provision",
    "session_reap_idle",
    "session_record_heartbeat",
    "session_release_finished_machines",
    "session_reprovision_undelivered",
    "session_restart_agent",
    "session_set_health",
    "session_touch",
    "session_traces_trim",
    "sessions_delete_finished",
    "traces_flush",
    "user_block",
    "user_budget_act",
    "user_unblock",
]
