"""Machine providers: one protocol (``base``) and its implementations, chosen by ``MACHINE_PROVIDER``.

Nothing here imports Django at import time: the local machine's runner (``python -m
machines.providers.local_runner``) imports this package first, and Django's settings took a third of its start.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from machines.providers.base import MachineProvider


@functools.cache
def get_provider(kind: str | None = None) -> MachineProvider:
    """The process-wide provider instance for ``kind`` (default: the configured one), whose calls are
    recorded for the dashboard (when the provider last answered, and last failed)."""
    from django.conf import settings

    from machines.providers.observed import ObservedProvider
    from machines.services.provider_health import provider_call_observed

    kind = kind or settings.MACHINE_PROVIDER
    return ObservedProvider(_provider(kind), kind=kind, observe=provider_call_observed)


def _provider(kind: str) -> MachineProvider:
    from django.conf import settings

    if kind == "fly":
        from machines.providers.fly import FlyConfig, FlyProvider
        from velocity.metrics import fly_request_observed

        return FlyProvider(
            FlyConfig.from_env(
                {
                    "FLY_API_TOKEN": settings.FLY_API_TOKEN,
                    "FLY_APP_NAME": settings.FLY_APP_NAME,
                    "FLY_API_BASE_URL": settings.FLY_API_BASE_URL,
                    "FLY_REGION": settings.FLY_REGION,
                    "PREVIEW_CONTAINER_IMAGE": settings.PREVIEW_CONTAINER_IMAGE,
                }
            ),
            on_request=fly_request_observed,
        )
    from machines.providers.local import LocalProvider
    from machines.providers.local_sandbox import SandboxConfig

    sandbox = SandboxConfig(
        root=settings.LOCAL_SANDBOX_DIR,
        uid_base=settings.LOCAL_SANDBOX_UID_BASE,
        uid_count=settings.LOCAL_SANDBOX_UID_COUNT,
    )
    return LocalProvider(settings.VAR_DIR / "machines", sandbox=sandbox)
