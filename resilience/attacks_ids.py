"""Other users' ids on every endpoint: user B tries user A's session, quota, project channel and topic.

A's session is created through the API (the task cluster is not needed: the first session registers the
project to A, which makes its private channel A's). Every attempt by B must be refused (404 for another's
session, 403 for service-role endpoints: quotas, the session policy and its dry-run and apply; 401 for machine
endpoints, an error reply for the channel), and A's session must be untouched afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from resilience.context import Context, bearer, connect, error_code, join, token
from resilience.report import Outcome


def create_session(ctx: Context, user: uuid.UUID, project: str) -> dict[str, object]:
    response = httpx.post(f"{ctx.api}/sessions/", json={"project_id": project}, headers=bearer(token(user)), timeout=10)
    response.raise_for_status()
    return dict(response.json())


def rest_attempts(session_id: str, owner: uuid.UUID, intruder: uuid.UUID) -> list[tuple[str, str, object, int]]:
    return [
        ("GET", f"/sessions/{session_id}/", None, 404),
        ("DELETE", f"/sessions/{session_id}/", None, 404),
        ("POST", f"/sessions/{session_id}/heartbeat/", None, 404),
        ("POST", f"/sessions/{session_id}/extend/", {"minutes": 30}, 404),
        ("GET", f"/quotas/{owner}/", None, 403),
        ("PUT", f"/quotas/{owner}/", {"max_concurrent_sessions": 99}, 403),
        ("PUT", f"/quotas/{intruder}/", {"max_concurrent_sessions": 99}, 403),
        ("GET", "/policy/", None, 403),
        ("POST", "/policy/dry-run/", {"idle_timeout_minutes": 15}, 403),
        ("POST", "/policy/apply/", {"idle_timeout_minutes": 1, "max_concurrent": 1}, 403),
        ("POST", "/agent/events/", {"type": "ready"}, 401),
        ("GET", f"/sessions/{uuid.uuid4()}/", None, 404),
    ]


def check_rest(ctx: Context, out: Outcome, session_id: str, owner: uuid.UUID, intruder: uuid.UUID) -> None:
    headers = bearer(token(intruder))
    for method, path, body, expected in rest_attempts(session_id, owner, intruder):
        response = httpx.request(method, ctx.api + path, json=body, headers=headers, timeout=10)
        code = error_code(response)
        out.check(
            response.status_code == expected and not code.startswith("<"),
            f"{method} {path.replace(session_id, '<A>').replace(str(owner), '<A>')}: {expected} {code}",
            f"{method} {path}: {response.status_code} {code} (expected {expected})",
        )
    listed = httpx.get(f"{ctx.api}/sessions/", headers=headers, timeout=10).json()
    ids = [row["id"] for row in listed.get("results", [])]
    out.check(session_id not in ids, "B's list does not show A's session", "B's list shows A's session")


async def _channel_attempts(ctx: Context, project: str, intruder: uuid.UUID) -> tuple[dict[str, Any], list[int]]:
    socket = await connect(ctx.ws_url(token(intruder)))
    try:
        answer = await join(socket, f"project:{project}")
    finally:
        await socket.close()
    url = f"{ctx.stack.base_url}/realtime/v1/api/broadcast/project:{project}/events/file:update"
    async with httpx.AsyncClient() as client:
        rest = [
            await client.post(url + query, json={"path": "a", "content": "x"}, headers=bearer(token(intruder)))
            for query in ("", "?private=true")
        ]
    return answer, [response.status_code for response in rest]


def check_realtime(ctx: Context, out: Outcome, project: str, intruder: uuid.UUID) -> None:
    answer, rest_status = asyncio.run(_channel_attempts(ctx, project, intruder))
    reason = str(answer.get("response", {}).get("reason", ""))
    out.check(answer.get("status") == "error", f"B joins project:<A's>: error '{reason[:80]}'", f"B joined: {answer}")
    out.check(
        rest_status == [403, 403],
        "B's REST broadcast on A's topic, public and private: 403",
        f"B's REST broadcasts (public, private): {rest_status}",
    )


def anon_key() -> str:
    """The project's public key, as a browser holds it (no user)."""
    from velocity.auth import issue_token

    return issue_token(sub=None, role="anon")


async def _public_attempts(ctx: Context, project: str, owner: uuid.UUID) -> dict[str, dict[str, Any]]:
    """The anon key through the public-channel door: A's project and user topics, public and private."""
    socket = await connect(ctx.ws_url(anon_key()))
    answers = {}
    try:
        for ref, (name, private) in enumerate(
            [(f"project:{project}", False), (f"user:{owner}", False), (f"project:{project}", True)], start=1
        ):
            answers[f"{name} private={private}"] = await join(socket, name, ref=str(ref), private=private)
    finally:
        await socket.close()
    return answers


def check_public_channels(ctx: Context, out: Outcome, project: str, owner: uuid.UUID) -> None:
    """Public channels are open to the anon key, but never on a project's or a user's topic."""
    for attempt, answer in asyncio.run(_public_attempts(ctx, project, owner)).items():
        reason = str(answer.get("response", {}).get("reason", ""))
        refused = answer.get("status") == "error" and reason.startswith(("PrivateOnly", "Unauthorized"))
        out.check(refused, f"anon key joins {attempt}: '{reason[:60]}'", f"anon key joined {attempt}: {answer}")


def run(ctx: Context, out: Outcome) -> None:
    owner, intruder = uuid.uuid4(), uuid.uuid4()
    project = f"victim-{uuid.uuid4().hex[:8]}"
    session = create_session(ctx, owner, project)
    out.step(f"user A created session {session['id']} for project {project}; user B tries it everywhere")
    check_rest(ctx, out, str(session["id"]), owner, intruder)
    check_realtime(ctx, out, project, intruder)
    check_public_channels(ctx, out, project, owner)
    after = httpx.get(f"{ctx.api}/sessions/{session['id']}/", headers=bearer(token(owner)), timeout=10).json()
    out.check(after["status"] == session["status"], "A's session is untouched", f"A's session is now {after['status']}")
    httpx.delete(f"{ctx.api}/sessions/{session['id']}/", headers=bearer(token(owner)), timeout=10)
