"""Configuration errors of the webhooks app, as system checks."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def check_retry_schedule(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    raw = settings.WEBHOOKS_RETRY_SCHEDULE
    try:
        delays = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        delays = [-1]
    if any(delay < 1 for delay in delays):
        message = f"WEBHOOKS_RETRY_SCHEDULE is {raw!r}: seconds between attempts, comma-separated, e.g. 5,30,120."
        return [Error(message, id="webhooks.E001")]
    return []
