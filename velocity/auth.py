"""Supabase access tokens: verification (HS256 secret or the project's JWKS) and issuance for tools.

The REST API, the realtime endpoint, the relay and the preview agents' credentials all go through here, so
one set of rules decides who a token belongs to: ``exp`` and ``role`` are required, ``exp``/``iat``/``nbf``
are numbers, the role is one we know, ``aud`` is one the door accepts, ``iss`` is the project's when
``SUPABASE_URL`` is set, ``sub`` (when present) is a canonical UUID, an ``anon`` token has no ``sub``,
``alg: none`` and any algorithm other than the one the key is for are refused.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import jwt
from django.conf import settings

SYMMETRIC_ALGORITHMS = ("HS256",)
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "EdDSA")
SERVICE_ROLE = "service_role"
ROLES = ("anon", "authenticated", SERVICE_ROLE)
# A preview agent's realtime key: an `authenticated` token (Supabase Realtime sets that database role) for
# this audience only, so the REST API refuses it. Its project and machine are claims of ours.
AGENT_AUDIENCE = "velocity_agent"
AGENT_PROJECT_CLAIM = "velocity_project"
AGENT_MACHINE_CLAIM = "velocity_machine"
ISSUER = "velocity"


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
    aud: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_service_role(self) -> bool:
        return self.role == SERVICE_ROLE

    @property
    def is_agent(self) -> bool:
        return self.aud == AGENT_AUDIENCE

    @property
    def agent_project(self) -> str | None:
        """The project a preview agent's key is scoped to; None for every other token."""
        project = self.claims.get(AGENT_PROJECT_CLAIM) if self.is_agent else None
        return project if isinstance(project, str) and project else None

    @property
    def agent_machine(self) -> str | None:
        machine = self.claims.get(AGENT_MACHINE_CLAIM) if self.is_agent else None
        return machine if isinstance(machine, str) and machine else None


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
    except jwt.exceptions.InvalidSubjectError as exc:
        raise TokenError("auth.bad_subject", "the token's subject is not a canonical UUID") from exc
    except (jwt.InvalidTokenError, TypeError, ValueError) as exc:
        raise TokenError("auth.invalid", "the token is not valid") from exc


def _numeric_claims(payload: dict[str, Any]) -> None:
    """``exp`` (required), ``iat`` and ``nbf`` must be JSON numbers: PyJWT would take the string "9e9"."""
    for name in ("exp", "iat", "nbf"):
        value = payload.get(name)
        if name in payload and (isinstance(value, bool) or not isinstance(value, int | float) or value != value):
            raise TokenError("auth.invalid", f"the token's '{name}' claim is not a number")


def _parse_sub(value: Any) -> uuid.UUID | None:
    """A canonical UUID string (lower case, hyphenated), as Supabase writes user ids; nothing else."""
    if value is None:
        return None
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value:
        raise TokenError("auth.bad_subject", "the token's subject is not a canonical UUID")
    return parsed


def _audiences(payload: dict[str, Any]) -> list[str] | None:
    aud = payload.get("aud")
    if aud is None:
        return None
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    raise TokenError("auth.bad_audience", "the token's audience is not a string")


def _check_audience(payload: dict[str, Any], role: str, accepted: Collection[str]) -> str | None:
    """The token's audience, if this door accepts it. User tokens must name one; Supabase's API keys
    (anon, service_role) carry none."""
    audiences = _audiences(payload)
    if audiences is None:
        if role == "authenticated":
            raise TokenError("auth.bad_audience", "the token has no audience")
        return None
    matching = [a for a in audiences if a in accepted]
    if not matching:
        raise TokenError("auth.bad_audience", "the token is not meant for this service")
    return matching[0]


def _check_issuer(payload: dict[str, Any]) -> None:
    issuers = settings.SUPABASE_JWT_ISSUERS
    if issuers and payload.get("iss") not in issuers:
        raise TokenError("auth.bad_issuer", "the token was not issued by this project")


def _check_role(payload: dict[str, Any]) -> str:
    role = payload["role"]
    if role not in ROLES:
        raise TokenError("auth.bad_role", "the token's role is not one this service knows")
    return str(role)


def verify_token(token: str, *, audiences: Collection[str] | None = None) -> Claims:
    """Verify a Supabase access token and return its claims, or raise ``TokenError``.

    Every door calls this. ``audiences`` are the ``aud`` values the door accepts: the REST API and the
    relay take user tokens only (``SUPABASE_JWT_AUDIENCE``); the realtime endpoint also takes preview
    agents' keys (``AGENT_AUDIENCE``).
    """
    if not token:
        raise TokenError("auth.missing", "no token was given")
    payload = _decode(token)
    _numeric_claims(payload)
    role = _check_role(payload)
    _check_issuer(payload)
    aud = _check_audience(payload, role, audiences or (settings.SUPABASE_JWT_AUDIENCE,))
    sub = _parse_sub(payload.get("sub"))
    if role == "anon" and sub is not None:
        raise TokenError("auth.anonymous", "an anonymous token cannot speak for a user")
    if sub is None and role == "authenticated":
        raise TokenError("auth.bad_subject", "the token has no subject")
    return Claims(sub=sub, role=role, exp=int(payload["exp"]), aud=aud, claims=payload)


def realtime_audiences() -> tuple[str, ...]:
    """What the realtime endpoint accepts: users' tokens and preview agents' keys."""
    return (settings.SUPABASE_JWT_AUDIENCE, AGENT_AUDIENCE)


def issue_token(
    *,
    sub: uuid.UUID | None,
    role: str = "authenticated",
    ttl: int = 3600,
    extra: dict[str, Any] | None = None,
    audience: str | None = None,
) -> str:
    """Sign a token with the configured secret, shaped like a Supabase access token."""
    now = int(time.time())
    aud = audience or settings.SUPABASE_JWT_AUDIENCE
    payload: dict[str, Any] = {"iat": now, "exp": now + ttl, "role": role, "iss": ISSUER, "aud": aud}
    if sub is not None:
        payload["sub"] = str(sub)
    payload.update(extra or {})
    return jwt.encode(payload, settings.SUPABASE_JWT_SECRET, algorithm="HS256")


def user_claims(user_id: uuid.UUID, *, ttl: int = 300) -> Claims:
    """A user's claims as the orchestrator vouches for them itself, with no token: for its own jobs (the
    benchmarks' and resilience scenarios' direct service calls) and tests."""
    exp = int(time.time()) + ttl
    payload = {"sub": str(user_id), "role": "authenticated", "aud": settings.SUPABASE_JWT_AUDIENCE, "exp": exp}
    return Claims(sub=user_id, role="authenticated", exp=exp, aud=settings.SUPABASE_JWT_AUDIENCE, claims=payload)
