"""The service-role API's shapes: endpoints (the secret only in the answer that made it) and deliveries."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from webhooks.catalog import EVENT_TYPES
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.ssrf import UnsafeUrl, registration_check


class EndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "event_types", "enabled", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class EndpointWriteSerializer(serializers.Serializer[Any]):
    """What a caller may set; ``event_types`` empty (the default) means every type."""

    url = serializers.URLField(max_length=2000)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(EVENT_TYPES)), required=False, default=list, max_length=20
    )
    enabled = serializers.BooleanField(required=False, default=True)

    def validate_url(self, value: str) -> str:
        try:
            registration_check(value, allow_private=settings.WEBHOOKS_ALLOW_PRIVATE)
        except UnsafeUrl as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class EndpointSecretSerializer(EndpointSerializer):
    """An endpoint with its signing secret: only in the answer to a create or a rotation."""

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


class SecretSerializer(serializers.Serializer[Any]):
    secret = serializers.CharField()


class DeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    event_type = serializers.CharField(source="message.event_type")
    message_id = serializers.CharField(source="message.id")
    payload = serializers.JSONField(source="message.payload")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint_id",
            "message_id",
            "event_type",
            "payload",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "last_response_code",
            "last_latency_ms",
            "last_error",
            "delivered_at",
            "redelivery_of_id",
            "created_at",
        ]
