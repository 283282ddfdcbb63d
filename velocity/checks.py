"""Configuration errors surface as system checks, so ``manage.py check --deploy`` and startup name them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def check_production_secrets(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if settings.SECRET_KEY in ("", settings.UNSET_SECRET_KEY):
        errors.append(
            Error(
                "DJANGO_SECRET_KEY is not set.",
                hint="With DEBUG off the secret key must come from the environment (DJANGO_SECRET_KEY).",
                id="velocity.E001",
            )
        )
    if not settings.SUPABASE_JWT_SECRET and not settings.SUPABASE_JWKS_URL:
        errors.append(
            Error(
                "Neither SUPABASE_JWT_SECRET nor SUPABASE_JWKS_URL is set: no token can be verified.",
                hint="Set SUPABASE_JWT_SECRET (HS256 projects) or SUPABASE_URL / SUPABASE_JWKS_URL.",
                id="velocity.E002",
            )
        )
    return errors


@register()
def check_machine_provider(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if settings.MACHINE_PROVIDER not in ("local", "fly"):
        return [Error("MACHINE_PROVIDER must be 'local' or 'fly'.", id="velocity.E003")]
    if settings.MACHINE_PROVIDER == "fly" and not (settings.FLY_API_TOKEN and settings.FLY_APP_NAME):
        return [
            Error(
                "MACHINE_PROVIDER is 'fly' but FLY_API_TOKEN or FLY_APP_NAME is missing.",
                hint="Set both, or leave MACHINE_PROVIDER unset for the local provider.",
                id="velocity.E004",
            )
        ]
    return []


@register()
def check_log_format(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if settings.LOG_FORMAT not in ("json", "console"):
        return [Error("LOG_FORMAT must be 'json' or 'console'.", id="velocity.E005")]
    return []


@register()
def check_metrics_token(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    # GET /metrics is routed on the web port in every configuration (PROMETHEUS_ENABLED only adds the
    # private METRICS_PORT listener), so without a token anyone who reaches the site reads it.
    if settings.DEBUG or settings.METRICS_TOKEN:
        return []
    return [
        Error(
            "METRICS_TOKEN is not set: GET /metrics on the web port is public.",
            hint="Set METRICS_TOKEN (or METRICS_TOKEN_FILE); scrapers send it as 'Authorization: Bearer <token>'.",
            id="velocity.E006",
        )
    ]
