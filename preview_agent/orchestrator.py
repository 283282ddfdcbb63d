"""Client for the orchestrator's agent API: lifecycle events and warm-pool assignment.

The orchestrator may be down, slow or not built yet: every call retries with backoff, logs, and
returns; nothing here raises into the agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from .httpclient import HttpError, request

logger = logging.getLogger(__name__)

EVENTS_PATH = "/api/v1/agent/events/"
ASSIGNMENT_PATH = "/api/v1/agent/assignment/"
LONG_POLL_SECONDS = 25
MAX_POLL_BACKOFF_SECONDS = 30.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Orchestrator:
    def __init__(self, base_url: str, token: str, *, project_id: str = "", session_id: str = "") -> None:
        self.base_url, self.project_id, self.session_id = base_url, project_id, session_id
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": "velocity-preview-agent"}

    async def send(self, event_type: str, *, attempts: int = 4, **fields: Any) -> bool:
        """POST one event; True once the orchestrator accepted it (2xx)."""
        if not self.base_url:
            return False
        body = {"type": event_type, **self._identity(), "sent_at": now_iso(), **fields}
        for attempt in range(attempts):
            status = await self._post(body)
            if status is not None and status < 500 and status != 429:
                if status >= 300:
                    logger.warning("orchestrator refused event", extra={"type": event_type, "status": status})
                return status < 300
            if attempt + 1 < attempts:
                await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
        logger.warning("orchestrator event not delivered", extra={"type": event_type})
        return False

    async def wait_for_assignment(self, poll_interval: float) -> dict[str, str]:
        """Warm pool: wait until the orchestrator hands this machine a project (204 = not yet)."""
        failures = 0
        while True:
            assignment, failed = await self._poll_assignment()
            if assignment is not None:
                return assignment
            failures = failures + 1 if failed else 0
            await asyncio.sleep(min(MAX_POLL_BACKOFF_SECONDS, poll_interval * 2**failures) if failed else poll_interval)

    async def _poll_assignment(self) -> tuple[dict[str, str] | None, bool]:
        """(assignment, failed): a 204 is a normal "not yet", anything unexpected backs off."""
        url = self.base_url + ASSIGNMENT_PATH
        params = {"wait": LONG_POLL_SECONDS}
        try:
            status, body = await request(
                "GET", url, headers=self._headers, params=params, timeout=LONG_POLL_SECONDS + 5
            )
        except HttpError as error:
            logger.warning("assignment poll failed", extra={"error": str(error)})
            return None, True
        if status != 200:
            return None, status != 204
        try:
            data = json.loads(body)
        except ValueError:
            return None, True
        if not isinstance(data, dict) or not data.get("project_id"):
            return None, True
        return {key: str(data.get(key) or "") for key in ("project_id", "session_id", "realtime_key")}, False

    async def _post(self, body: dict[str, Any]) -> int | None:
        try:
            status, _ = await request("POST", self.base_url + EVENTS_PATH, headers=self._headers, body=body)
        except HttpError as error:
            logger.info("orchestrator unreachable", extra={"type": body["type"], "error": str(error)})
            return None
        return status

    def _identity(self) -> dict[str, str]:
        identity = {"project_id": self.project_id, "session_id": self.session_id}
        machine = os.environ.get("MACHINE_ID") or os.environ.get("FLY_MACHINE_ID", "")
        return {**identity, "machine_id": machine} if machine else identity
