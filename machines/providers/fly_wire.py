"""Fly Machines wire formats: the Machine object, error answers, headers and timestamps."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from machines.providers.base import (
    BadRequest,
    Conflict,
    Guest,
    MachineState,
    NotFound,
    ProviderError,
    ProviderMachine,
    RateLimited,
    Unavailable,
    WaitTimeout,
    parse_state,
)

logger = logging.getLogger(__name__)


def machine_from_json(data: Mapping[str, Any], *, app_name: str) -> ProviderMachine:
    """Turn Fly's ``Machine`` object into a ``ProviderMachine``."""
    machine_config = data.get("config") or {}
    guest = machine_config.get("guest") or {}
    raw_state = str(data.get("state") or "")
    state = parse_state(raw_state)
    if state is None:
        logger.warning("unknown fly machine state", extra={"fly_state": raw_state, "fly_machine": data.get("id")})
        state = MachineState.FAILED
    machine_id = str(data.get("id") or "")
    return ProviderMachine(
        id=machine_id,
        name=str(data.get("name") or ""),
        state=state,
        raw_state=raw_state,
        region=data.get("region"),
        private_ip=data.get("private_ip"),
        private_address=f"{machine_id}.vm.{app_name}.internal",
        metadata=dict(machine_config.get("metadata") or {}),
        image=machine_config.get("image"),
        guest=Guest(guest["cpu_kind"], guest["cpus"], guest["memory_mb"]) if guest else None,
        created_at=parse_timestamp(data.get("created_at")),
        version=data.get("version") or data.get("instance_id"),
    )


def error_from_response(response: httpx.Response) -> ProviderError:
    """Map a non-2xx answer to a typed error; Fly's body is ``{error, status, message?}``."""
    message, code = _error_text(response)
    status = response.status_code
    kwargs: dict[str, Any] = {"status": status, "code": code, "request_id": response.headers.get("fly-request-id")}
    if status == 429:
        return RateLimited(message, retry_after=parse_retry_after(response.headers.get("retry-after")), **kwargs)
    if status == 408:
        return WaitTimeout(message, **kwargs)
    if status == 404:
        return NotFound(message, **kwargs)
    if status == 409 or code == "name_taken":
        return Conflict(message, **kwargs)
    if status >= 500 or code in {"insufficient_capacity", "volume_placement_capacity"}:
        return Unavailable(message, **kwargs)
    if status in (400, 412, 422):
        return BadRequest(message, **kwargs)
    return ProviderError(message, **kwargs)


def _error_text(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return (response.text[:500] or response.reason_phrase, None)
    if not isinstance(body, dict):
        return (str(body)[:500], None)
    message = body.get("message") or body.get("error") or response.reason_phrase
    return (str(message), body.get("status"))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header, given as seconds or as an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_timestamp(value: object) -> datetime | None:
    """Fly's RFC 3339 times; fractions beyond microseconds are cut, not trusted to parse."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
