"""Supabase access tokens: verification (HS256 secret or the project's JWKS) and issuance for tools.

The REST API, the realtime endpoint and the preview agents' credentials all go through here, so one set
of rules decides who a token belongs to: ``exp`` and ``role`` are required, ``sub`` (when present) must
be a UUID, ``alg: none`` and any algorithm other than the one the key is for are refused.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from django.conf import settings

SYMMETRIC_ALGORITHMS = ("HS256",)
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "EdDSA")
ROLES = ("anon", "authenticated", "service_role")
SERVICE_ROLE = "service_role"


class TokenError(Exception):
    """A refused token; ``code`` is stable for clients, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Claims:
    sub: uuid.UUID | None
    role: str
    exp: int
    claims: dict[str, Any] = field(repr=False)

    @property
    def is_service_role(self) -> bool:
        return self.role == SERVICE_ROLE


@functools.cache
def _jwks_client(url: str) -> jwt.PyJWKClient:
    # PyJWKClient caches the key set and refetches on an unknown kid.
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=600, timeout=5)


def _signing_key(token: str, header: dict[str, Any]) -> tuple[Any, str]:
    alg = header.get("alg")
    if alg in SYMMETRIC_ALGORITHMS:
        if not settings.SUPABASE_JWT_SECRET:
            raise TokenError("auth.unsupported_algorithm", "HS256 tokens are not accepted: no JWT secret is set")
        return settings.SUPABASE_JWT_SECRET, alg
    if alg in ASYMMETRIC_ALGORITHMS:
        if not settings.SUPABASE_JWKS_URL:
            raise TokenError("auth.unsupported_algorithm", "asymmetric tokens need SUPABASE_JWKS_URL")
        try:
            jwk = _jwks_client(settings.SUPABASE_JWKS_URL).get_signing_key_from_jwt(token)
        except jwt.PyJWKClientError as exc:
            raise TokenError("auth.unknown_key", "the token's signing key is not in the project's JWKS") from exc
        if jwk.algorithm_name != alg:
            raise TokenError("auth.wrong_algorithm", "the token's algorithm does not match its key")
        return jwk.key, alg
    raise TokenError("auth.unsupported_algorithm", "the token's algorithm is not accepted")


def _decode(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise TokenError("auth.malformed", "the token is not a JWT") from exc
    key, alg = _signing_key(token, header)
    try:
        return jwt.decode(
            token, key, algorithms=[alg], options={"require": ["exp", "role"], "verify_aud": False}, leeway=5
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("auth.expired", "the token has expired") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError("auth.missing_claim", f"the token has no '{exc.claim}' claim") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("auth.bad_signature", "the token's signature does not verify") from exc
    except (jwt.InvalidTokenError, TypeError, ValueError) as exc:
        raise TokenError("auth.invalid", "the token is not valid") from exc


def _parse_sub(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise TokenError("auth.bad_subject", "the token's subject is not a UUID") from exc


def verify_token(token: str) -> Claims:
    """Verify a Supabase access token and return its claims, or raise ``TokenError``."""
    if not token:
        raise TokenError("auth.missing", "no token was given")
    payload = _decode(token)
    role = payload["role"]
    if not isinstance(role, str) or not role:
        raise TokenError("auth.bad_role", "the token's role is not a string")
    sub = _parse_sub(payload.get("sub"))
    if sub is None and role != "anon" and role != SERVICE_ROLE:
        raise TokenError("auth.bad_subject", "the token has no subject")
    return Claims(sub=sub, role=role, exp=int(payload["exp"]), claims=payload)


def issue_token(
    *, sub: uuid.UUID | None, role: str = "authenticated", ttl: int = 3600, extra: dict[str, Any] | None = None
) -> str:
    """Sign a token with the configured secret, shaped like a Supabase access token."""
    now = int(time.time())
    payload: dict[str, Any] = {"iat": now, "exp": now + ttl, "role": role, "iss": "velocity", "aud": "authenticated"}
    if sub is not None:
        payload["sub"] = str(sub)
    payload.update(extra or {})
    return jwt.encode(payload, settings.SUPABASE_JWT_SECRET, algorithm="HS256")
