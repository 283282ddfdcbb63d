"""Tasks of the webhooks app, enqueued by dotted path (``services.DELIVER_TASK``) after commit, and by the
one-off schedules of the retries."""

from __future__ import annotations

from django.utils import timezone

from webhooks import services


def deliver_webhook(delivery_id: str) -> str:
    """One attempt of one delivery (idempotent: a delivery already delivered or dead is left alone)."""
    delivery = services.delivery_attempt(delivery_id=delivery_id, now=timezone.now())
    if delivery is None:
        return f"webhook delivery {delivery_id}: not open or being sent by another worker, nothing sent"
    code = delivery.last_response_code if delivery.last_response_code is not None else "-"
    return f"webhook delivery {delivery_id}: {delivery.status} after {delivery.attempts} attempt(s) (HTTP {code})"
