"""Hostile tokens: forged, expired, ``alg: none``, a wrong key, malformed, anonymous, no expiry.

Each one is sent to the REST API (expect 401 and a specific ``auth.*`` code), as the websocket's
``apikey`` (expect the handshake refused) and as a join's ``access_token`` on an otherwise valid
socket (expect an error reply naming the problem).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa

from resilience.context import Context, bearer, connect, error_code, join, token
from resilience.report import Outcome


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def hostile_tokens() -> dict[str, str]:
    now, sub = int(time.time()), str(uuid.uuid4())
    claims = {"sub": sub, "role": "authenticated", "exp": now + 600, "iat": now}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "forged (HS256, another secret)": jwt.encode(claims, "not-the-secret-" * 3, algorithm="HS256"),
        "expired": token(ttl=-120),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong key (RS256, unknown key)": jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "attacker"}),
        "malformed": "not.a.jwt",
        "garbage": "A" * 500,
        "anon key (no sub)": jwt.encode({"role": "anon", "exp": now + 600, "iat": now}, _secret(), algorithm="HS256"),
        "anon role with a sub": token(role="anon"),
        "no expiry": jwt.encode({"sub": sub, "role": "authenticated"}, _secret(), algorithm="HS256"),
        "service role, forged": jwt.encode({**claims, "role": "service_role"}, "guess", algorithm="HS256"),
    }


def _secret() -> str:
    from django.conf import settings

    return str(settings.SUPABASE_JWT_SECRET)


def check_rest(ctx: Context, out: Outcome, tokens: dict[str, str]) -> None:
    out.step(f"GET /api/v1/sessions/ and GET /api/v1/quota/ with {len(tokens)} hostile tokens")
    for name, value in tokens.items():
        for path in ("/sessions/", "/quota/"):
            response = httpx.get(ctx.api + path, headers=bearer(value), timeout=10)
            code = error_code(response)
            out.check(
                response.status_code == 401 and code.startswith("auth."),
                f"REST {path} {name}: 401 {code}",
                f"REST {path} {name}: answered {response.status_code} {code}",
            )


async def _handshake_refused(url: str) -> str | None:
    """None when the server refused the websocket as Supabase does (401 with a JSON ``error``); else what
    happened."""
    try:
        socket = await connect(url)
    except websockets.InvalidStatus as refused:
        return _refusal_problem(refused.response.status_code, refused.response.body or b"")
    await socket.close()
    return "accepted"


def _refusal_problem(status: int, body: bytes) -> str | None:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    return None if status == 401 and isinstance(error, str) and error else f"status {status} body {body[:80]!r}"


async def _join_refusal(ctx: Context, value: str) -> dict[str, Any]:
    socket = await connect(ctx.ws_url(token(role="service_role")))
    try:
        return await join(socket, f"project:{uuid.uuid4().hex[:8]}", access_token=value)
    finally:
        await socket.close()


def check_realtime(ctx: Context, out: Outcome, tokens: dict[str, str]) -> None:
    out.step("the same tokens as the websocket apikey and as a join's access_token")
    for name, value in tokens.items():
        refused = asyncio.run(_handshake_refused(ctx.ws_url(value)))
        if name.startswith("anon") and refused == "accepted":
            out.saw("websocket apikey anonymous role: accepted, as Supabase accepts its anon key (joins are checked)")
        else:
            out.check(
                refused is None, f"websocket apikey {name}: handshake refused", f"websocket apikey {name}: {refused}"
            )
        answer = asyncio.run(_join_refusal(ctx, value))
        reason = str(answer.get("response", {}).get("reason", ""))
        out.check(
            answer.get("status") == "error" and bool(reason),
            f"join access_token {name}: error '{reason[:70]}'",
            f"join access_token {name}: {answer}",
        )


def run(ctx: Context, out: Outcome) -> None:
    tokens = hostile_tokens()
    check_rest(ctx, out, tokens)
    check_realtime(ctx, out, tokens)
    out.check(ctx.healthy(), "the server is healthy afterwards", "the server is not healthy afterwards")
