"""Applying a session policy (idle timeout, TTL, concurrency limit): the dry-run's separate, audited action."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions.dry_run import Policy
from sessions.models import Quota, SessionPolicy
from sessions.policy_selectors import LivePolicy, live_policy, policy_errors
from velocity.audit import audit


class PolicyInvalid(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


def policy_apply(
    *, policy: Policy, actor: Any | None = None, actor_label: str = "", reason: str = ""
) -> tuple[LivePolicy, LivePolicy]:
    """Make ``policy`` the live one (rules left None stay as they are): the idle timeout in ``SessionPolicy``,
    the TTL and the concurrency limit in the default quota. One audit record with before and after (and an
    operator's ``reason``); returns the live policy before and after. Raises ``PolicyInvalid`` (changing
    nothing) for what ``policy_errors`` refuses.
    """
    errors = policy_errors(policy)
    if errors:
        raise PolicyInvalid(errors)
    now = timezone.now()
    with transaction.atomic():
        quota = Quota.objects.select_for_update().filter(user_id=None).first() or Quota.objects.create(user_id=None)
        before = live_policy()
        if policy.idle_timeout_minutes is not None:
            SessionPolicy.objects.update_or_create(
                id=1, defaults={"idle_timeout_seconds": policy.idle_timeout_minutes * 60, "updated_at": now}
            )
        _quota_update(quota, policy, now=now)
        after = live_policy()
        audit(
            actor=actor,
            actor_label=actor_label,
            action="policy.apply",
            target=quota,
            before=asdict(before),
            after=asdict(after) | ({"reason": reason[:400]} if reason else {}),
        )
    return before, after


def _quota_update(quota: Quota, policy: Policy, *, now: Any) -> None:
    changes = {
        name: value
        for name, value in (
            ("max_session_seconds", None if policy.ttl_minutes is None else policy.ttl_minutes * 60),
            ("max_concurrent_sessions", policy.max_concurrent),
        )
        if value is not None
    }
    if not changes:
        return
    for name, value in changes.items():
        setattr(quota, name, value)
    quota.updated_at = now
    quota.save(update_fields=[*changes, "updated_at"])
