"""The conformance suite's target: the embedded endpoint by default, a real Supabase project when asked.

Every case in this folder drives the official clients (realtime-js through ``JsClient``, Python ``realtime``)
against ``target`` and pins one behaviour of supabase/realtime (each case names, in a comment, the file of
supabase/realtime whose behaviour it pins). The same cases run against a hosted project with two variables:

- ``CONFORMANCE_SUPABASE_URL``: the project's URL, e.g. ``https://abcd.supabase.co``;
- ``CONFORMANCE_SUPABASE_KEYS``: ``anon=<anon key>,service=<service_role key>[,jwt_secret=<JWT secret>]``.
  With the (legacy) JWT secret, cases that need a signed-in user mint one; without it they are skipped.

A case that needs what only the embedded endpoint offers (e.g. rows written into its database by the test)
asks for ``embedded_target`` and is skipped against a hosted project.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
import pytest

from realtime_bridge.testing import RealtimeServer, service_token
from velocity.auth import issue_token

URL_VARIABLE = "CONFORMANCE_SUPABASE_URL"
KEYS_VARIABLE = "CONFORMANCE_SUPABASE_KEYS"


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
    def rest_base(self) -> str:
        """The REST broadcast base: ``…/realtime/v1/api``."""
        return f"{self.http_base}/api"

    def user_key(self, sub: uuid.UUID | str | None = None, *, ttl: int = 3600) -> str:
        """A signed-in user's access token (a new user unless ``sub`` is given)."""
        if self.mint is None:
            pytest.skip(f"{KEYS_VARIABLE} has no jwt_secret: this case needs a signed-in user")
        return self.mint(str(sub or uuid.uuid4()), ttl)


def parse_keys(text: str) -> dict[str, str]:
    """``anon=…,service=…,jwt_secret=…`` as a dict (keys are JWTs: no commas or '=' before the value)."""
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    return {name.strip(): value.strip() for name, value in pairs}


def hosted_target(url: str, keys: dict[str, str]) -> Target:
    secret = keys.get("jwt_secret")

    def mint(sub: str, ttl: int) -> str:
        now = int(time.time())
        claims = {"sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + ttl}
        return jwt.encode(claims, secret or "", algorithm="HS256")

    return Target(
        name="supabase",
        http_base=f"{url.rstrip('/')}/realtime/v1",
        anon_key=keys["anon"],
        service_key=keys["service"],
        mint=mint if secret else None,
    )


def embedded(server: RealtimeServer) -> Target:
    return Target(
        name="embedded",
        http_base=server.http_base,
        anon_key=issue_token(sub=None, role="anon", ttl=3600),
        service_key=service_token(),
        mint=lambda sub, ttl: issue_token(sub=uuid.UUID(sub), role="authenticated", ttl=ttl),
    )


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    url = os.environ.get(URL_VARIABLE)
    if url:
        return hosted_target(url, parse_keys(os.environ.get(KEYS_VARIABLE, "")))
    return embedded(request.getfixturevalue("realtime_server"))


@pytest.fixture
def embedded_target(target: Target) -> Target:
    if target.hosted:
        pytest.skip("needs the embedded endpoint (writes its rows into the test database)")
    return target
