"""Reads of the webhooks app: endpoints and their deliveries, newest first."""

from __future__ import annotations

import uuid

from django.db.models import Count, Q, QuerySet

from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

DELIVERIES_SHOWN = 50


def endpoint_list() -> QuerySet[WebhookEndpoint]:
    """Every endpoint, with how many of its deliveries are ``retrying`` and ``dead`` (one query)."""
    return WebhookEndpoint.objects.annotate(
        retrying=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.RETRYING)),
        dead=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.DEAD)),
    ).order_by("-created_at")


def endpoint_get(endpoint_id: uuid.UUID | str) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.filter(pk=endpoint_id).first()


def delivery_list(*, endpoint: WebhookEndpoint | None = None, status: str = "") -> QuerySet[WebhookDelivery]:
    """Deliveries with their message and endpoint (no N+1), optionally of one endpoint or one status."""
    deliveries = WebhookDelivery.objects.select_related("message", "endpoint").order_by("-created_at")
    if endpoint is not None:
        deliveries = deliveries.filter(endpoint=endpoint)
    if status in DeliveryStatus.values:
        deliveries = deliveries.filter(status=status)
    return deliveries


def delivery_get(delivery_id: uuid.UUID | str) -> WebhookDelivery | None:
    return WebhookDelivery.objects.select_related("message", "endpoint").filter(pk=delivery_id).first()
