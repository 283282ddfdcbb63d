"""The realtime endpoint's configuration errors, as system checks."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from realtime_bridge.limits import PROFILES


@register()
def check_limits_profile(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if settings.REALTIME_LIMITS_PROFILE in PROFILES:
        return []
    names = " or ".join(repr(name) for name in PROFILES)
    return [Error(f"REALTIME_LIMITS_PROFILE must be {names}.", id="realtime_bridge.E001")]
