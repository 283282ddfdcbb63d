"""The service-role API for webhooks: endpoints (CRUD, secret rotation) and their deliveries (list, redeliver).
A user's token gets 403 ``auth.forbidden`` on every door: the endpoints and what they receive are the
operator's, never a tenant's."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sessions.errors import ApiError
from sessions.permissions import IsServiceRole
from sessions.schema import errors
from velocity.auth import SERVICE_ROLE
from webhooks import selectors, services
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from webhooks.serializers import (
    DeliverySerializer,
    EndpointSecretSerializer,
    EndpointSerializer,
    EndpointWriteSerializer,
    SecretSerializer,
)

SERVICE_403 = "`auth.forbidden`: only the service role may do this"
ENDPOINT_404 = "`not_found`: no such endpoint"
DELIVERY_404 = "`not_found`: no such delivery"
URL_400 = "`request.invalid`: the body; a URL to a private, loopback or link-local address is refused"


def _actor(request: Request) -> str:
    user: Any = request.user
    return f"{SERVICE_ROLE}:{user.id}" if getattr(user, "id", None) else SERVICE_ROLE


def _endpoint_or_404(endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = selectors.endpoint_get(endpoint_id)
    if endpoint is None:
        raise NotFound("no such endpoint")
    return endpoint


class ServiceRoleApi(APIView):
    permission_classes = [IsServiceRole]
    throttle_scope = "sessions"


@extend_schema_view(get=extend_schema(responses={200: EndpointSerializer(many=True), **errors(e403=SERVICE_403)}))
class EndpointListApi(generics.ListAPIView[WebhookEndpoint], ServiceRoleApi):
    serializer_class = EndpointSerializer

    def get_queryset(self) -> Any:
        return selectors.endpoint_list()

    @extend_schema(
        request=EndpointWriteSerializer,
        responses={201: EndpointSecretSerializer, **errors(e400=URL_400, e403=SERVICE_403)},
    )
    def post(self, request: Request) -> Response:
        """Register an endpoint; the answer holds its secret, shown this once."""
        serializer = EndpointWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_create(**serializer.validated_data, actor=None, actor_label=_actor(request))
        return Response(EndpointSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(ServiceRoleApi):
    @extend_schema(responses={200: EndpointSerializer, **errors(e403=SERVICE_403, e404=ENDPOINT_404)})
    def get(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        return Response(EndpointSerializer(_endpoint_or_404(endpoint_id)).data)

    @extend_schema(
        request=EndpointWriteSerializer,
        responses={200: EndpointSerializer, **errors(e400=URL_400, e403=SERVICE_403, e404=ENDPOINT_404)},
    )
    def patch(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        endpoint = _endpoint_or_404(endpoint_id)
        serializer = EndpointWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        values = {name: value for name, value in serializer.validated_data.items() if name in request.data}
        services.endpoint_update(endpoint=endpoint, values=values, actor=None, actor_label=_actor(request))
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(
        responses={
            204: OpenApiResponse(description="deleted, with its deliveries"),
            **errors(e403=SERVICE_403, e404=ENDPOINT_404),
        }
    )
    def delete(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        services.endpoint_delete(endpoint=_endpoint_or_404(endpoint_id), actor=None, actor_label=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateApi(ServiceRoleApi):
    @extend_schema(request=None, responses={200: SecretSerializer, **errors(e403=SERVICE_403, e404=ENDPOINT_404)})
    def post(self, request: Request, endpoint_id: uuid.UUID) -> Response:
        """A new secret (shown this once); the previous one still signs for 24 hours."""
        endpoint = _endpoint_or_404(endpoint_id)
        secret = services.endpoint_rotate_secret(
            endpoint=endpoint, actor=None, actor_label=_actor(request), now=timezone.now()
        )
        return Response({"secret": secret})


@extend_schema_view(
    get=extend_schema(
        parameters=[
            OpenApiParameter("endpoint", str, description="only this endpoint's deliveries (its id)"),
            OpenApiParameter("status", str, enum=DeliveryStatus.values, description="only deliveries in this status"),
        ],
        responses={
            200: DeliverySerializer(many=True),
            **errors(e400="`request.invalid`: `endpoint` is not a UUID", e403=SERVICE_403, e404=ENDPOINT_404),
        },
    )
)
class DeliveryListApi(generics.ListAPIView[WebhookDelivery], ServiceRoleApi):
    """Deliveries, newest first; ``?endpoint=<id>`` and ``?status=pending|retrying|delivered|dead`` filter."""

    serializer_class = DeliverySerializer

    def get_queryset(self) -> Any:
        raw = self.request.query_params.get("endpoint", "")
        endpoint = None
        if raw:
            try:
                endpoint = _endpoint_or_404(uuid.UUID(raw))
            except ValueError:
                raise ApiError(status_code=400, code="request.invalid", message="endpoint must be a UUID") from None
        return selectors.delivery_list(endpoint=endpoint, status=self.request.query_params.get("status", ""))


class DeliveryRedeliverApi(ServiceRoleApi):
    @extend_schema(
        request=None,
        responses={
            202: DeliverySerializer,
            **errors(
                e403=SERVICE_403, e404=DELIVERY_404, e409="`webhook.delivery_open`: the delivery is still being tried"
            ),
        },
    )
    def post(self, request: Request, delivery_id: uuid.UUID) -> Response:
        """Send the delivery's message again (a new delivery, the same ``webhook-id``)."""
        delivery = selectors.delivery_get(delivery_id)
        if delivery is None:
            raise NotFound("no such delivery")
        try:
            again = services.delivery_redeliver(delivery=delivery, actor=None, actor_label=_actor(request))
        except services.DeliveryOpen as exc:
            raise ApiError(status_code=409, code="webhook.delivery_open", message=str(exc)) from None
        return Response(DeliverySerializer(again).data, status=status.HTTP_202_ACCEPTED)
