"""Record when the provider last answered and last failed (``ProviderHealth``), from any process.

Successes are written at most every ``OK_EVERY`` seconds per process and provider (a launch polls the
provider many times a second); failures every time but at most once a second. The write waits for the
caller's transaction to commit, like every other side effect, and never fails the provider call.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from machines.models import ProviderHealth
from machines.providers.observed import is_provider_failure

logger = logging.getLogger(__name__)

OK_EVERY = 10.0
FAILURE_EVERY = 1.0
_written: dict[tuple[str, bool], float] = {}


def provider_call_observed(kind: str, call: str, error: BaseException | None) -> None:
    """The ``ObservedProvider`` callback."""
    failed = error is not None and is_provider_failure(error)
    if not _due(kind, failed):
        return
    message = f"{type(error).__name__}: {error}"[:300] if failed else ""
    now = timezone.now()
    transaction.on_commit(lambda: _write(kind, call, message if failed else None, now=now), robust=True)


def _due(kind: str, failed: bool) -> bool:
    every = FAILURE_EVERY if failed else OK_EVERY
    last = _written.get((kind, failed))
    if last is not None and time.monotonic() - last < every:
        return False
    _written[(kind, failed)] = time.monotonic()
    return True


def _write(kind: str, call: str, failure: str | None, *, now: datetime) -> None:
    if failure is None:
        changes = {"last_ok_at": now, "last_ok_call": call}
    else:
        changes = {"last_failure_at": now, "last_failure_call": call, "last_failure": failure}
    try:
        ProviderHealth.objects.update_or_create(provider=kind, defaults=changes)
    except Exception:
        logger.exception("provider health not recorded", extra={"provider": kind})


def provider_health_reset() -> None:
    """Forget the write throttle (tests)."""
    _written.clear()
