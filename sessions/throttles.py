from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle


class UserScopedThrottle(ScopedRateThrottle):
    """Per user (per IP when anonymous), with the view's scope: creates are tighter than reads."""


class IPThrottle(SimpleRateThrottle):
    """Per client address across every endpoint, whoever the token says they are."""

    scope = "ip"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
