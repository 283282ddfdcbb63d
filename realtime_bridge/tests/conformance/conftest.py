"""The conformance suite's target: the embedded endpoint by default, a real Supabase project when asked.

Every case in this folder drives the official clients (realtime-js through ``JsClient``, Python ``realtime``)
against ``target`` and pins one behaviour of supabase/realtime (each case names, in a comment, the file of
supabase/realtime whose behaviour it pins). The same cases run against a hosted project with two variables:

- ``CONFORMANCE_SUPABASE_URL``: the project's URL, e.g. ``https://abcd.supabase.co``;
- ``CONFORMANCE_SUPABASE_KEYS``: ``anon=<anon key>,service=<service_role key>[,jwt_secret=<JWT secret>]``.
  With the (legacy) JWT secret, cases that need a signed-in user mint one; without it they are skipped.

A case that needs what only the embedded endpoint offers (e.g. rows written into its database by the test)
asks for ``embedded_target`` and is skipped against a hosted project. ``make conformance`` runs this folder alone;
docs/realtime.md (*Conformance with Supabase*) says what a hosted project needs and lists each case.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from realtime import AsyncRealtimeClient

from realtime_bridge.testing import RealtimeServer, service_token
from realtime_bridge.tests.clients import JsClient, private, subscribe
from velocity.auth import issue_token

# private and subscribe are the cases' helpers too (from tests.clients), imported from here with the rest.
__all__ = ["Clients", "Target", "new_topic", "private", "subscribe"]

URL_VARIABLE = "CONFORMANCE_SUPABASE_URL"
KEYS_VARIABLE = "CONFORMANCE_SUPABASE_KEYS"
REQUIRED_KEYS = ("anon", "service")


@dataclass(frozen=True)
class Target:
    """Where the suite points: ``http_base`` is the realtime base (``…/realtime/v1``), as the clients take it."""

    name: str
    http_base: str
    anon_key: str
    service_key: str
    mint: Callable[[str, int], str] | None = field(default=None, repr=False)

    @property
    def hosted(self) -> bool:
        return self.name == "supabase"

    @property
    def project_url(self) -> str:
        """What a frontend gives ``createClient``: the base without ``/realtime/v1``."""
        return self.http_base.removesuffix("/realtime/v1")

    @property
    def rest_base(self) -> str:
        """The REST broadcast base: ``…/realtime/v1/api``."""
        return f"{self.http_base}/api"

    def user_key(self, sub: uuid.UUID | str | None = None, *, ttl: int = 3600) -> str:
        """A signed-in user's access token (a new user unless ``sub`` is given)."""
        if self.mint is None:
            pytest.skip(f"{KEYS_VARIABLE} has no jwt_secret: this case needs a signed-in user")
        return self.mint(str(sub or uuid.uuid4()), ttl)

    async def rest_broadcast(self, messages: list[dict[str, Any]], key: str | None = None) -> httpx.Response:
        """``POST /api/broadcast`` with a ``messages`` list, as supabase-js and the server's API docs send it."""
        key = key or self.service_key
        headers = {"Authorization": f"Bearer {key}", "apikey": key}
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.post(f"{self.rest_base}/broadcast", json={"messages": messages}, headers=headers)


def new_topic(prefix: str = "conformance") -> str:
    """A topic nobody else uses: no policy claims ``conformance:``, so on the embedded endpoint only the service
    role may use it, as on a Supabase project whose ``realtime.messages`` has no policy for it."""
    return f"{prefix}:{uuid.uuid4()}"


def parse_keys(text: str) -> dict[str, str]:
    """``anon=…,service=…,jwt_secret=…`` as a dict (keys are JWTs or ``sb_…`` keys: no commas or '=' in them)."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    malformed = [pair[0].strip() for pair in pairs if len(pair) != 2 or not pair[1].strip()]
    if malformed:
        raise pytest.UsageError(f"{KEYS_VARIABLE}: {', '.join(malformed)} has no value (expected name=value)")
    return {name.strip(): value.strip() for name, value in pairs}


def hosted_target(url: str, keys: Mapping[str, str]) -> Target:
    missing = [name for name in REQUIRED_KEYS if not keys.get(name)]
    if missing:
        raise pytest.UsageError(f"{KEYS_VARIABLE} lacks {', '.join(missing)} (anon=…,service=…[,jwt_secret=…])")
    if not url.startswith(("https://", "http://")):
        raise pytest.UsageError(f"{URL_VARIABLE} must be the project's URL, e.g. https://abcd.supabase.co")
    secret = keys.get("jwt_secret")

    def mint(sub: str, ttl: int) -> str:
        now = int(time.time())
        claims = {"sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + ttl}
        return jwt.encode(claims, secret or "", algorithm="HS256")

    return Target(
        name="supabase",
        http_base=f"{url.rstrip('/').removesuffix('/realtime/v1')}/realtime/v1",
        anon_key=keys["anon"],
        service_key=keys["service"],
        mint=mint if secret else None,
    )


def target_from_environment(environ: Mapping[str, str]) -> Target | None:
    """The hosted project the two variables name, or None (the embedded endpoint)."""
    url = environ.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    return hosted_target(url, parse_keys(environ.get(KEYS_VARIABLE, "")))


def embedded(server: RealtimeServer) -> Target:
    return Target(
        name="embedded",
        http_base=server.http_base,
        anon_key=issue_token(sub=None, role="anon", ttl=3600),
        service_key=service_token(),
        mint=lambda sub, ttl: issue_token(sub=uuid.UUID(sub), role="authenticated", ttl=ttl),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Check the two variables when the suite is loaded, so a wrong key stops the run before any case."""
    target_from_environment(os.environ)


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    return target_from_environment(os.environ) or embedded(request.getfixturevalue("realtime_server"))


@pytest.fixture
def embedded_target(target: Target) -> Target:
    if target.hosted:
        pytest.skip("needs the embedded endpoint (writes its rows into the test database)")
    return target


class Clients:
    """Starts official clients against the target and closes them all when the case ends."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._js: list[JsClient] = []
        self._python: list[AsyncRealtimeClient] = []

    async def js(self, key: str | None = None, **options: Any) -> JsClient:
        """realtime-js (or ``library="supabase-js"``) connected with ``key`` (the service key by default)."""
        client = await JsClient.start(self.target.http_base, key or self.target.service_key, **options)
        self._js.append(client)
        return client

    async def python(self, key: str | None = None, *, access_token: str | None = None) -> AsyncRealtimeClient:
        """Python ``realtime`` connected with ``key``; ``access_token`` is sent with each join (``set_auth``)."""
        client = AsyncRealtimeClient(self.target.http_base, token=key or self.target.service_key, auto_reconnect=False)
        await client.connect()
        if access_token:
            await client.set_auth(access_token)
        self._python.append(client)
        return client

    async def close(self) -> None:
        for js in self._js:
            await js.close()
        for python in self._python:
            await python.close()


@pytest.fixture
async def clients(target: Target) -> AsyncIterator[Clients]:
    started = Clients(target)
    yield started
    await started.close()
