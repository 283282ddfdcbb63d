from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from sessions.authentication import MachineCaller, TokenUser


class IsTokenUser(BasePermission):
    """Any verified Supabase token (a user, or the service role)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, TokenUser)


class IsServiceRole(BasePermission):
    """The seed's "Service role can manage sessions"."""

    message = "only the service role may do this"

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, TokenUser) and request.user.is_service_role


class IsMachine(BasePermission):
    """A preview agent authenticated by its machine token."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, MachineCaller)
