"""1,000 concurrent creates by users at their limits: no quota is ever exceeded.

Forty users get limits of 1 to 4 concurrent sessions (through the service-role quota API) and already
hold one fewer live session than their limit. Then 1,000 creates for new projects are fired at once,
25 per user. Afterwards no user may hold more live sessions than their limit, every refusal must be a
429 with a quota code, and nothing may fail with a 5xx. The task cluster is not running, so the creates
race only each other (no agents are started); the sessions are ended at the end.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx

from resilience.context import Context, bearer, error_code, token
from resilience.report import Outcome

USERS = 40
CREATES = 1000


def set_limits(ctx: Context, users: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    limits = {user: 1 + index % 4 for index, user in enumerate(users)}
    service = bearer(token(role="service_role"))
    with httpx.Client(timeout=20) as client:
        for user, limit in limits.items():
            body = {
                "max_concurrent_sessions": limit,
                "max_session_seconds": 7200,
                "monthly_machine_seconds": 360000,
                "monthly_budget_usd": "5.00",
                "max_memory_mb": 1024,
            }
            client.put(f"{ctx.api}/quotas/{user}/", json=body, headers=service).raise_for_status()
            for index in range(limit - 1):
                client.post(
                    f"{ctx.api}/sessions/",
                    json={"project_id": f"held-{user.hex[:12]}-{index}"},
                    headers=bearer(token(user)),
                ).raise_for_status()
    return limits


async def fire(ctx: Context, users: list[uuid.UUID]) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    tokens = {user: token(user) for user in users}
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=200)) as client:

        async def create(index: int) -> None:
            user = users[index % len(users)]
            try:
                response = await client.post(
                    f"{ctx.api}/sessions/",
                    json={"project_id": f"race-{user.hex[:12]}-{index}"},
                    headers=bearer(tokens[user]),
                )
                outcomes[
                    f"{response.status_code} {error_code(response) if response.status_code >= 400 else ''}".strip()
                ] += 1
            except httpx.HTTPError as error:
                outcomes[f"transport error {type(error).__name__}"] += 1

        await asyncio.gather(*(create(index) for index in range(CREATES)))
    return outcomes


def live_counts(users: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    from sessions.models import LIVE_STATUSES, PreviewSession

    counts = Counter(
        PreviewSession.objects.filter(user_id__in=users, status__in=LIVE_STATUSES).values_list("user_id", flat=True)
    )
    return {user: counts.get(user, 0) for user in users}


def end_all(users: list[uuid.UUID]) -> None:
    from django.utils import timezone

    from sessions.models import LIVE_STATUSES, PreviewSession

    now = timezone.now()
    PreviewSession.objects.filter(user_id__in=users, status__in=LIVE_STATUSES).update(
        status="ended", end_reason="user", ended_at=now, updated_at=now
    )


def run(ctx: Context, out: Outcome) -> None:
    users = [uuid.uuid4() for _ in range(USERS)]
    limits = set_limits(ctx, users)
    out.step(f"{USERS} users with limits 1-4, each holding limit-1 live sessions; {CREATES} concurrent creates")
    outcomes = asyncio.run(fire(ctx, users))
    out.saw(f"answers: {dict(outcomes)}")
    counts = live_counts(users)
    over = {str(u): (counts[u], limits[u]) for u in users if counts[u] > limits[u]}
    out.check(
        not over,
        f"no user above the limit; {sum(counts.values())} live sessions for {sum(limits.values())} allowed",
        f"users above their limit (live, limit): {over}",
    )
    out.check(
        sum(counts.values()) == sum(limits.values()),
        "every user reached exactly the limit",
        f"{sum(counts.values())} live sessions, {sum(limits.values())} allowed (some creates lost)",
    )
    bad = {k: v for k, v in outcomes.items() if not (k.startswith("201") or k.startswith("429 quota."))}
    out.check(not bad, "every answer was 201 or 429 quota.*", f"other answers: {bad}")
    end_all(users)
