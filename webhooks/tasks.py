"""Tasks of the webhooks app, enqueued by dotted path (``services.DELIVER_TASK``) after commit, and by the
one-off schedules of the retries."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from webhooks import services


def deliver_webhook(delivery_id: str) -> str:
    """One attempt of one delivery (idempotent: a delivery already delivered or dead is left alone)."""
    delivery = services.delivery_attempt(delivery_id=delivery_id, now=timezone.now())
    if delivery is None:
        return f"webhook delivery {delivery_id}: not open or being sent by another worker, nothing sent"
    code = delivery.last_response_code if delivery.last_response_code is not None else "-"
    return f"webhook delivery {delivery_id}: {delivery.status} after {delivery.attempts} attempt(s) (HTTP {code})"


def prune_webhooks() -> str:
    """Drop finished webhook messages past ``WEBHOOKS_KEEP_DAYS`` (the ``prune_webhooks`` schedule)."""
    pruned = services.webhooks_prune(now=timezone.now(), keep=timedelta(days=settings.WEBHOOKS_KEEP_DAYS))
    return f"pruned {pruned} webhook message(s) older than {settings.WEBHOOKS_KEEP_DAYS} days"
