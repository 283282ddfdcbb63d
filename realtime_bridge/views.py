"""HTTP endpoints: REST broadcast (`POST /realtime/v1/api/broadcast`, batch and single) and the relay's server side."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from realtime_bridge import policies, publish, selectors
from realtime_bridge.connection import Limits
from realtime_bridge.events import TOPIC_PREFIX
from realtime_bridge.protocol import ENCODING_BINARY, ENCODING_JSON, BinaryBroadcast, BroadcastFrames, dumps
from velocity import json_input
from velocity.auth import Claims, TokenError, realtime_audiences, verify_token

# CORS is django-cors-headers' (`velocity.middleware.CorsMiddleware`, `CORS_ALLOWED_ORIGINS`): it answers
# preflights before these views run and adds the headers for the origins the deployment allows.


def _message(text: str, status: int) -> HttpResponse:
    return JsonResponse({"message": text}, status=status)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """The response for requests the endpoint does not serve (or None to go on)."""
    if not selectors.embedded_endpoint_enabled():
        return _message("Not found", 404)
    if request.method == "OPTIONS":  # not a CORS preflight (those never reach the view)
        return HttpResponse(status=204)
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
    """A public message on an unclaimed topic goes out with no policy asked, as Realtime's REST broadcast
    sends public messages (``lib/realtime/tenants/batch_broadcast.ex``); every other needs write access."""
    topic, private = message["topic"], bool(message.get("private"))
    if policies.public_open(topic, private=private):
        return True
    return topic in allowed and (private or not policies.private_only(topic))


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
        return JsonResponse({"errors": {"messages": errors}}, status=422)
    if any(_too_big(m["payload"]) for m in messages):
        return _message("Payload too large", 422)
    allowed = await _allowed(claims, {m["topic"] for m in messages})
    for message in messages:
        if _deliverable(message, allowed):
            frames = publish.json_frames(message["topic"], message)
            await publish.publish_frames(message["topic"], bool(message.get("private")), frames)
    return HttpResponse(status=202)


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
    await publish.publish_frames(topic, private, frames)
    return HttpResponse(status=202)


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
    return _user_broadcast(topic, event, payload)


def _user_broadcast(topic: str, event: str, payload: Any) -> BroadcastFrames:
    """A single JSON broadcast travels as Realtime's user broadcast (``lib/realtime/tenants/single_broadcast.ex``):
    vsn 2.0.0 sockets get a binary kind 4 frame with a JSON payload, vsn 1.0.0 sockets its JSON form. (The
    batch form is a plain Phoenix broadcast, a text frame for everyone: ``publish.json_frames``.)"""
    body = BinaryBroadcast(event, dumps(payload).encode("utf-8"), ENCODING_JSON)
    return BroadcastFrames.from_binary(TOPIC_PREFIX + topic, body)


@csrf_exempt
async def relay_view(request: HttpRequest) -> HttpResponse:
    """The server side of the relay: service role only."""
    header = request.headers.get("Authorization", "")
    try:
        claims = verify_token(header.removeprefix("Bearer ").strip())
    except TokenError:
        return JsonResponse({"error": "unauthorized"}, status=401)
    if not claims.is_service_role or request.method != "POST":
        return JsonResponse({"error": "forbidden"}, status=403)
    try:
        body = json_input.loads(request.body)
        await publish.dispatch(body)
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "bad relay message"}, status=400)
    return JsonResponse({"ok": True}, status=202)
