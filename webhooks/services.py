"""Writes of the webhooks app: endpoints (operators and the service role, audited), messages made from the
operator events, and the deliveries' attempts, retries, dead letters and redeliveries."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from realtime_bridge.events import Event
from velocity.audit import audit
from webhooks import metrics, sender
from webhooks.catalog import webhook_body, webhook_type
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookMessage
from webhooks.ssrf import registration_check

logger = logging.getLogger(__name__)

DELIVER_TASK = "webhooks.tasks.deliver_webhook"
LEASE_MARGIN = timedelta(seconds=30)  # beyond the attempt's timeout, before another worker may take it over
ROTATION_OVERLAP = timedelta(hours=24)  # the previous secret still signs this long after a rotation
ENDPOINT_FIELDS = ("url", "description", "event_types", "enabled")


class DeliveryOpen(Exception):
    """A delivery still being tried cannot be redelivered (it would reach the receiver twice)."""


# --- endpoints ---------------------------------------------------------------------------------


def secret_new() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _endpoint_state(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {name: getattr(endpoint, name) for name in ENDPOINT_FIELDS}


def endpoint_create(
    *, url: str, description: str = "", event_types: list[str], enabled: bool = True, actor: Any, actor_label: str = ""
) -> WebhookEndpoint:
    """Register an endpoint with a new secret (the caller shows it once). ``UnsafeUrl`` for a refused URL."""
    registration_check(url, allow_private=settings.WEBHOOKS_ALLOW_PRIVATE)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            url=url, description=description, event_types=sorted(set(event_types)), enabled=enabled, secret=secret_new()
        )
        audit(
            actor=actor,
            actor_label=actor_label,
            action="webhook.create",
            target=endpoint,
            after=_endpoint_state(endpoint),
        )
    return endpoint


def endpoint_update(*, endpoint: WebhookEndpoint, values: dict[str, Any], actor: Any, actor_label: str = "") -> bool:
    """Change the endpoint's url, description, types or enabled flag; False when nothing changed."""
    if "url" in values:
        registration_check(values["url"], allow_private=settings.WEBHOOKS_ALLOW_PRIVATE)
    if "event_types" in values:
        values = {**values, "event_types": sorted(set(values["event_types"]))}
    before = _endpoint_state(endpoint)
    changed = {name: value for name, value in values.items() if name in ENDPOINT_FIELDS and before[name] != value}
    if not changed:
        return False
    with transaction.atomic():
        for name, value in changed.items():
            setattr(endpoint, name, value)
        endpoint.updated_at = timezone.now()
        endpoint.save(update_fields=[*changed, "updated_at"])
        after = {name: getattr(endpoint, name) for name in changed}
        audit(
            actor=actor,
            actor_label=actor_label,
            action="webhook.update",
            target=endpoint,
            before={name: before[name] for name in changed},
            after=after,
        )
    return True


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint, actor: Any, actor_label: str = "", now: datetime) -> str:
    """A new secret (returned, to show once); the old one also signs for ``ROTATION_OVERLAP``."""
    with transaction.atomic():
        endpoint.previous_secret, endpoint.secret = endpoint.secret, secret_new()
        endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
        endpoint.updated_at = now
        endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
        after = {"previous_secret_expires_at": endpoint.previous_secret_expires_at.isoformat()}
        audit(actor=actor, actor_label=actor_label, action="webhook.rotate_secret", target=endpoint, after=after)
    return endpoint.secret


def endpoint_delete(*, endpoint: WebhookEndpoint, actor: Any, actor_label: str = "") -> None:
    """Delete the endpoint and its deliveries (disabling keeps them)."""
    with transaction.atomic():
        audit(
            actor=actor,
            actor_label=actor_label,
            action="webhook.delete",
            target=endpoint,
            before=_endpoint_state(endpoint),
        )
        endpoint.delete()


def signing_secrets(endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        return [endpoint.secret, endpoint.previous_secret]
    return [endpoint.secret]


# --- events into messages and deliveries -------------------------------------------------------


def webhook_event_receive(event: Event) -> None:
    """The ``realtime_bridge.listeners`` callback: an operator event becomes one message and a delivery per
    enabled endpoint that wants its type, each enqueued after commit."""
    webhook_events_receive([event])


def webhook_events_receive(events: list[Event]) -> None:
    """The same for a bulk write's events (its ``many`` form): the endpoints are read once, and not at all when
    none of the events is sent as a webhook."""
    typed = [(event, typed) for event in events if (typed := webhook_type(event)) is not None]
    if not typed:
        return
    # Inside a caller's transaction each step is a savepoint: whatever fails here leaves that transaction usable.
    # Outside one (an announcement after commit, the usual case) the read needs none: no BEGIN and COMMIT
    # around a SELECT that finds, most of the time, that no endpoint wants the event.
    with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
        enabled = list(WebhookEndpoint.objects.filter(enabled=True))
    wanted = [
        (event, event_type, dedupe_key, endpoints)
        for event, (event_type, dedupe_key) in typed
        if (endpoints := [e for e in enabled if e.wants(event_type)])
    ]
    if not wanted:
        return
    with transaction.atomic():
        for event, event_type, dedupe_key, endpoints in wanted:
            _deliveries_create(event, event_type, dedupe_key, endpoints)


def _deliveries_create(event: Event, event_type: str, dedupe_key: str | None, endpoints: list[WebhookEndpoint]) -> None:
    message = _message_create(event_type, webhook_body(event_type, event), dedupe_key)
    if message is None:
        return
    deliveries = [WebhookDelivery(endpoint=e, message=message) for e in endpoints]
    WebhookDelivery.objects.bulk_create(deliveries)
    for delivery in deliveries:
        transaction.on_commit(partial(delivery_enqueue, delivery.id))


def _message_create(event_type: str, payload: dict[str, Any], dedupe_key: str | None) -> WebhookMessage | None:
    """The new message, or None when its dedupe key was already sent."""
    try:
        with transaction.atomic():
            return WebhookMessage.objects.create(
                id=f"msg_{uuid.uuid4().hex}", event_type=event_type, payload=payload, dedupe_key=dedupe_key
            )
    except IntegrityError:
        return None


def delivery_enqueue(delivery_id: uuid.UUID) -> None:
    async_task(DELIVER_TASK, str(delivery_id), task_name=f"webhook-{delivery_id}", group="webhooks")


# --- attempts ----------------------------------------------------------------------------------


def retry_delays() -> list[int]:
    """``WEBHOOKS_RETRY_SCHEDULE`` as seconds (``webhooks.E001`` refuses a malformed one at start)."""
    return [int(part) for part in settings.WEBHOOKS_RETRY_SCHEDULE.split(",") if part.strip()]


def next_attempt_at(*, attempts: int, delays: list[int], now: datetime) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or None: the delivery is a dead letter (pure)."""
    if attempts > len(delays):
        return None
    return now + timedelta(seconds=delays[attempts - 1])


def delivery_attempt(*, delivery_id: uuid.UUID | str, now: datetime) -> WebhookDelivery | None:
    """Send an open delivery once and record the outcome; None when it is not open or another worker holds it.

    The delivery is claimed with a conditional update (a lease of one attempt's timeout), so two workers
    never send it at once and no row or database lock is held during the request."""
    lease = now + timedelta(seconds=settings.WEBHOOKS_TIMEOUT) + LEASE_MARGIN
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    open_ = WebhookDelivery.objects.filter(pk=delivery_id, status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
    if open_.filter(free).update(claimed_until=lease) != 1:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint", "message").get(pk=delivery_id)
    outcome = _send(delivery, now=now)
    with transaction.atomic():
        _record(delivery, outcome, now=now)
    return delivery


def _send(delivery: WebhookDelivery, *, now: datetime) -> sender.Outcome:
    endpoint, message = delivery.endpoint, delivery.message
    if not endpoint.enabled:
        return sender.Outcome(ok=False, error="the endpoint is disabled")
    body = json.dumps(message.payload, separators=(",", ":"))
    # Signed with the moment of sending (the real clock): receivers refuse timestamps five minutes off.
    headers = sender.signed_headers(
        secrets=signing_secrets(endpoint, now=now), msg_id=message.id, body=body, at=timezone.now()
    )
    return sender.send(
        url=endpoint.url,
        headers=headers,
        body=body,
        allow_private=settings.WEBHOOKS_ALLOW_PRIVATE,
        timeout=settings.WEBHOOKS_TIMEOUT,
    )


def _record(delivery: WebhookDelivery, outcome: sender.Outcome, *, now: datetime) -> None:
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_response_code = outcome.response_code
    delivery.last_latency_ms = outcome.latency_ms
    delivery.last_error = outcome.error
    retry_at = None if outcome.ok or not delivery.endpoint.enabled else _retry_at(delivery, now)
    delivery.next_attempt_at = retry_at
    delivery.claimed_until = None
    if outcome.ok:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
    else:
        delivery.status = DeliveryStatus.RETRYING if retry_at else DeliveryStatus.DEAD
    fields = ["attempts", "last_attempt_at", "last_response_code", "last_latency_ms", "last_error"]
    delivery.save(update_fields=[*fields, "next_attempt_at", "claimed_until", "status", "delivered_at"])
    metrics.attempt_recorded(
        result=delivery.status, latency_ms=outcome.latency_ms, answered=outcome.response_code is not None
    )
    level = logging.INFO if outcome.ok or retry_at else logging.WARNING
    logger.log(
        level,
        "webhook attempt",
        extra={"delivery": str(delivery.id), "status": delivery.status, "code": outcome.response_code},
    )


def _retry_at(delivery: WebhookDelivery, now: datetime) -> datetime | None:
    """Schedule the next attempt (a one-off django-q2 schedule) and say when; None after the last one."""
    retry_at = next_attempt_at(attempts=delivery.attempts, delays=retry_delays(), now=now)
    if retry_at is not None:
        Schedule.objects.create(
            name=f"webhook-retry-{delivery.id}-{delivery.attempts}",
            func=DELIVER_TASK,
            args=repr(str(delivery.id)),
            schedule_type=Schedule.ONCE,
            repeats=-1,
            next_run=retry_at,
        )
    return retry_at


def delivery_redeliver(*, delivery: WebhookDelivery, actor: Any, actor_label: str = "") -> WebhookDelivery:
    """Send a delivered or dead message again to the same endpoint (a new delivery, the same ``webhook-id``)."""
    if delivery.is_open:
        raise DeliveryOpen("this delivery is still being tried")
    with transaction.atomic():
        again = WebhookDelivery.objects.create(
            endpoint=delivery.endpoint, message=delivery.message, redelivery_of=delivery
        )
        audit(
            actor=actor,
            actor_label=actor_label,
            action="webhook.redeliver",
            target=delivery.endpoint,
            after={"delivery": str(again.id), "redelivery_of": str(delivery.id), "message": delivery.message_id},
        )
        transaction.on_commit(partial(delivery_enqueue, again.id))
    return again


# --- retention ---------------------------------------------------------------------------------


def webhooks_prune(*, now: datetime, keep: timedelta) -> int:
    """Delete the messages older than ``keep`` whose deliveries are all delivered or dead (a delivery still
    being tried keeps its message); their deliveries go with them. Returns how many messages went."""
    still_open = WebhookDelivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
    old = WebhookMessage.objects.filter(created_at__lt=now - keep).exclude(id__in=still_open.values("message_id"))
    _, by_model = old.delete()
    return by_model.get(WebhookMessage._meta.label, 0)
