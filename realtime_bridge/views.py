"""REST broadcast: `POST /realtime/v1/api/broadcast` (batch) and the single-message form."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from realtime_bridge import events, metrics, policies, selectors
from realtime_bridge.connection import TOPIC_PREFIX, Limits
from realtime_bridge.hub import get_hub, topic_group
from realtime_bridge.protocol import ENCODING_BINARY, BinaryBroadcast, BroadcastFrames
from velocity import json_input
from velocity.auth import Claims, TokenError, realtime_audiences, verify_token

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "apikey, authorization, content-type, x-client-info",
    "Access-Control-Max-Age": "86400",
}


def _cors(response: HttpResponse) -> HttpResponse:
    for name, value in CORS_HEADERS.items():
        response[name] = value
    return response


def _message(text: str, status: int) -> HttpResponse:
    return _cors(JsonResponse({"message": text}, status=status))


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """The response for requests the endpoint does not serve (or None to go on)."""
    if not selectors.embedded_endpoint_enabled():
        return _message("Not found", 404)
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204))
    if request.method != "POST":
        return _message("Method not allowed", 405)
    return None


def _claims(request: HttpRequest) -> Claims | None:
    """Bearer wins over the `apikey` header (or query parameter, as realtime-js appends it)."""
    bearer = request.headers.get("Authorization", "")
    token = bearer[7:] if bearer[:7].lower() == "bearer " else ""
    token = token or request.headers.get("apikey", "") or request.GET.get("apikey", "")
    try:
        return verify_token(token.strip(), audiences=realtime_audiences())
    except TokenError:
        return None


@database_sync_to_async
def _allowed(claims: Claims, topics: set[str]) -> set[str]:
    """The topics these claims may write to. A project's topic is private only: nobody can be subscribed to
    its public twin, so a public message there is not delivered at all."""
    return {topic for topic in topics if policies.authorize(claims, topic, policies.WRITE)}


def _deliverable(message: dict[str, Any], allowed: set[str]) -> bool:
    private = bool(message.get("private"))
    return message["topic"] in allowed and (private or not policies.private_only(message["topic"]))


def _errors(messages: Any) -> list[dict[str, list[str]]] | None:
    """Per-message validation errors, or None when every message is valid."""
    if not isinstance(messages, list) or not messages:
        return [{"messages": ["can't be blank"]}]
    errors: list[dict[str, list[str]]] = []
    for message in messages:
        error = {}
        if not isinstance(message, dict):
            message = {}
        for key in ("topic", "event"):
            if not isinstance(message.get(key), str) or not message[key]:
                error[key] = ["can't be blank"]
        if not isinstance(message.get("payload"), dict):
            error["payload"] = ["must be a map"]
        errors.append(error)
    return errors if any(errors) else None


async def _publish(topic: str, private: bool, frames: BroadcastFrames) -> None:
    await get_hub().broadcast(topic_group(TOPIC_PREFIX + topic, private=private), frames, sender=None)
    metrics.broadcast_seen(frames.event, frames.size())
    await events.mirror_broadcast(topic, frames.event, frames.json_payload)


async def publish_message(message: dict[str, Any]) -> None:
    """A server-side broadcast (already authorized): one REST-shaped message to every subscriber."""
    await _publish(message["topic"], bool(message.get("private")), _json_frames(message["topic"], message))


def _json_frames(topic: str, message: dict[str, Any]) -> BroadcastFrames:
    payload = {"type": "broadcast", "event": message["event"], "payload": message["payload"]}
    if message.get("id"):
        payload["meta"] = {"id": str(message["id"])}
    return BroadcastFrames(TOPIC_PREFIX + topic, payload, None)


@csrf_exempt
async def broadcast(request: HttpRequest) -> HttpResponse:
    """Batch form; all-or-nothing validation, unauthorised topics silently skipped (202)."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    claims = _claims(request)
    if claims is None:
        return _message("Unauthorized", 401)
    try:
        body = json_input.loads(request.body or b"{}")
    except ValueError:
        return _message("Invalid JSON", 400)
    messages = body.get("messages") if isinstance(body, dict) else None
    errors = _errors(messages)
    if errors is not None or not isinstance(messages, list):
        return _cors(JsonResponse({"errors": {"messages": errors}}, status=422))
    if any(_too_big(m["payload"]) for m in messages):
        return _message("Payload too large", 422)
    allowed = await _allowed(claims, {m["topic"] for m in messages})
    for message in messages:
        if _deliverable(message, allowed):
            frames = _json_frames(message["topic"], message)
            await _publish(message["topic"], bool(message.get("private")), frames)
    return _cors(HttpResponse(status=202))


def _too_big(payload: Any) -> bool:
    return len(json.dumps(payload)) > Limits.from_settings().max_payload_bytes


@csrf_exempt
async def broadcast_single(request: HttpRequest, topic: str, event: str) -> HttpResponse:
    """`/api/broadcast/<topic>/events/<event>`: JSON body or raw bytes (octet-stream)."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    claims = _claims(request)
    if claims is None:
        return _message("Unauthorized", 401)
    frames = _single_frames(request, topic, event)
    if isinstance(frames, HttpResponse):
        return frames
    private = request.GET.get("private", "").lower() == "true"
    if not _deliverable({"topic": topic, "private": private}, await _allowed(claims, {topic})):
        return _message("Unauthorized", 403)
    await _publish(topic, private, frames)
    return _cors(HttpResponse(status=202))


def _single_frames(request: HttpRequest, topic: str, event: str) -> BroadcastFrames | HttpResponse:
    content_type = request.content_type or ""
    if len(request.body) > Limits.from_settings().max_payload_bytes:
        return _message("Payload too large", 422)
    if content_type == "application/octet-stream":
        body = BinaryBroadcast(event, bytes(request.body), ENCODING_BINARY)
        return BroadcastFrames(TOPIC_PREFIX + topic, None, body)
    if content_type != "application/json":
        return _message("Unsupported media type", 415)
    try:
        payload = json_input.loads(request.body)
    except ValueError:
        return _message("Invalid JSON", 422)
    return _json_frames(topic, {"event": event, "payload": payload})
