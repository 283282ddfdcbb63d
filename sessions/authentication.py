"""DRF authentication: Supabase access tokens for people and services, machine tokens for agents."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from machines.models import Machine
from machines.services import machine_get_by_token
from velocity.auth import Claims, TokenError, verify_token


class AuthFailed(exceptions.AuthenticationFailed):
    """A 401 that carries the token verifier's stable code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(detail=message, code=code)


@dataclass(frozen=True)
class TokenUser:
    """The caller a verified token speaks for: ``id`` is the Supabase user (``sub``)."""

    id: uuid.UUID | None
    role: str
    claims: Claims

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False

    @property
    def is_service_role(self) -> bool:
        return self.claims.is_service_role

    @property
    def pk(self) -> str:  # throttles key on it
        return str(self.id or self.role)


def bearer_token(request: Request) -> str | None:
    header = get_authorization_header(request).decode("latin-1").split()
    if not header or header[0].lower() != "bearer":
        return None
    if len(header) != 2:
        raise AuthFailed("auth.malformed", "the Authorization header must be 'Bearer <token>'")
    return header[1]


class SupabaseJWTAuthentication(BaseAuthentication):
    """``Authorization: Bearer <Supabase access token>``; users need a ``sub``, the service role does not."""

    def authenticate(self, request: Request) -> tuple[TokenUser, Claims] | None:
        token = bearer_token(request)
        if token is None:
            return None
        try:
            claims = verify_token(token)
        except TokenError as exc:
            raise AuthFailed(exc.code, exc.message) from exc
        # The public anon key speaks for nobody, whatever claims it carries; a user needs a subject.
        if claims.role == "anon" or (claims.sub is None and not claims.is_service_role):
            raise AuthFailed("auth.anonymous", "an anonymous token cannot use this API; sign in first")
        return TokenUser(id=claims.sub, role=claims.role, claims=claims), claims

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


@dataclass(frozen=True)
class MachineCaller:
    """A preview agent, known by its machine's token."""

    machine: Machine

    is_authenticated = True
    is_active = True
    is_anonymous = False

    @property
    def pk(self) -> str:
        return f"machine:{self.machine.id}"


class MachineTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <machine token>`` from a preview agent (never a user's token)."""

    def authenticate(self, request: Request) -> tuple[MachineCaller, None]:
        machine = machine_get_by_token(bearer_token(request) or "")
        if machine is None:
            raise AuthFailed("auth.machine_token", "a valid machine token is required")
        return MachineCaller(machine), None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="agent"'


def caller_id(request: Request) -> uuid.UUID | None:
    user: Any = request.user
    return user.id if isinstance(user, TokenUser) else None
