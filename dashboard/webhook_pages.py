"""The operator's webhook pages: endpoints registered, edited, disabled, their secret rotated (shown once), and
each endpoint's deliveries with a redeliver button. Staff only; every write goes through ``webhooks.services``
with the operator as the audited actor."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from dashboard.forms import WebhookEndpointForm
from dashboard.views import _page
from webhooks import selectors, services
from webhooks.catalog import EVENT_TYPES
from webhooks.models import DeliveryStatus, WebhookEndpoint

DELIVERIES_PER_PAGE = 25


def _endpoint_or_404(endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = selectors.endpoint_get(endpoint_id)
    if endpoint is None:
        raise Http404("no such webhook endpoint")
    return endpoint


def _secret_page(request: HttpRequest, endpoint: WebhookEndpoint, secret: str, what: str) -> HttpResponse:
    """The one page that shows a secret: the answer to the POST that made it (never stored in a message)."""
    context = {"nav": "webhooks", "endpoint": endpoint, "secret": secret, "what": what}
    return render(request, "dashboard/webhook_secret.html", context)


@staff_member_required
@require_http_methods(["GET", "POST"])
def webhook_list(request: HttpRequest) -> HttpResponse:
    """Every endpoint, and the form that registers one (its secret shown once on the next page)."""
    form = WebhookEndpointForm(request.POST or None, initial={"enabled": True})
    if request.method == "POST" and form.is_valid():
        endpoint = services.endpoint_create(**form.cleaned_data, actor=request.user)
        return _secret_page(request, endpoint, endpoint.secret, "registered")
    context = {"nav": "webhooks", "endpoints": selectors.endpoint_list(), "form": form, "types": EVENT_TYPES}
    return render(request, "dashboard/webhooks.html", context, status=400 if form.errors else 200)


@staff_member_required
@require_http_methods(["GET", "POST"])
def webhook_detail(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    """One endpoint: its settings (edited here), and its deliveries, newest first."""
    endpoint = _endpoint_or_404(endpoint_id)
    form = WebhookEndpointForm(request.POST or None, initial=_initial(endpoint))
    if request.method == "POST" and form.is_valid():
        if services.endpoint_update(endpoint=endpoint, values=form.cleaned_data, actor=request.user):
            messages.success(request, "Endpoint saved.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("dashboard:webhook", endpoint_id=endpoint.id)
    status = request.GET.get("status", "")
    deliveries = selectors.delivery_list(endpoint=endpoint, status=status)
    context = {
        "nav": "webhooks",
        "endpoint": endpoint,
        "form": form,
        "status": status,
        "statuses": DeliveryStatus.choices,
        "page": Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(request.GET.get("page")),
    }
    return _page(request, "dashboard/webhook_detail.html", context, ["webhook_deliveries"])


def _initial(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {name: getattr(endpoint, name) for name in services.ENDPOINT_FIELDS}


@staff_member_required
@require_POST
def webhook_rotate(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint_or_404(endpoint_id)
    secret = services.endpoint_rotate_secret(endpoint=endpoint, actor=request.user, now=timezone.now())
    return _secret_page(request, endpoint, secret, "rotated")


@staff_member_required
@require_POST
def webhook_delete(request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
    endpoint = _endpoint_or_404(endpoint_id)
    services.endpoint_delete(endpoint=endpoint, actor=request.user)
    messages.success(request, f"Endpoint {endpoint.url} deleted, with its deliveries.")
    return redirect("dashboard:webhooks")


@staff_member_required
@require_POST
def webhook_redeliver(request: HttpRequest, delivery_id: uuid.UUID) -> HttpResponse:
    delivery = selectors.delivery_get(delivery_id)
    if delivery is None:
        raise Http404("no such delivery")
    try:
        services.delivery_redeliver(delivery=delivery, actor=request.user)
        messages.success(request, f"Message {delivery.message_id} queued again for {delivery.endpoint.url}.")
    except services.DeliveryOpen:
        messages.error(request, "This delivery is still being tried: wait for it to be delivered or dead.")
    return redirect("dashboard:webhook", endpoint_id=delivery.endpoint_id)
