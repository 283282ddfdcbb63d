"""Configuration errors surface as system checks, so ``manage.py check --deploy`` and startup name them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from machines.services.pool_target import pool_policy
from sessions.project_access_supabase import quoted_identifier, quoted_table
from velocity.preview_hosts import orchestrator_hosts, registrable_domain


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
def check_project_access(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    backend = settings.PROJECT_ACCESS_BACKEND
    if backend not in ("registry", "supabase"):
        return [Error("PROJECT_ACCESS_BACKEND must be 'registry' or 'supabase'.", id="velocity.E006")]
    if backend == "supabase":
        return _supabase_project_access_errors()
    return []


def _supabase_project_access_errors() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        errors.append(
            Error(
                "PROJECT_ACCESS_BACKEND is 'supabase' but the database is not PostgreSQL.",
                hint="The frontend's projects table is asked with row-level security: set DATABASE_URL.",
                id="velocity.E007",
            )
        )
    names = (
        ("TABLE", settings.PROJECT_ACCESS_SUPABASE_TABLE, quoted_table),
        ("ID_COLUMN", settings.PROJECT_ACCESS_SUPABASE_ID_COLUMN, quoted_identifier),
    )
    for name, value, validate in names:
        try:
            validate(value)
        except ValueError as exc:
            errors.append(Error(f"PROJECT_ACCESS_SUPABASE_{name} is not a valid name: {exc}.", id="velocity.E008"))
    return errors


@register()
def check_preview_hosts(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    # A preview runs strangers' scripts: on the orchestrator's origin, or even its registrable domain (cookies,
    # SameSite), they would act in a logged-in operator's browser next to /admin/ and /dashboard/.
    suffix = settings.PREVIEW_HOST_SUFFIX
    if settings.MACHINE_PROVIDER == "fly" and not suffix:
        return [
            Error(
                "MACHINE_PROVIDER is 'fly' but PREVIEW_HOST_SUFFIX is empty: Fly previews need hosts of their own.",
                hint="Set PREVIEW_HOST_SUFFIX to a wildcard domain on another registrable domain than the "
                "orchestrator's (e.g. example-previews.dev for velocity.example.com); see docs/deploy.md.",
                id="velocity.E009",
            )
        ]
    if suffix:
        return _previews_sharing_a_site(suffix)
    return []


def _previews_sharing_a_site(suffix: str) -> list[CheckMessage]:
    preview_site = registrable_domain(f"preview.{suffix}")
    shared = [host for host in orchestrator_hosts() if registrable_domain(host) == preview_site]
    if not shared:
        return []
    return [
        Error(
            f"PREVIEW_HOST_SUFFIX {suffix!r} is on the registrable domain {preview_site!r}, "
            f"shared with the orchestrator's {', '.join(shared)}.",
            hint="Previews on the orchestrator's registrable domain can set its cookies and make same-site "
            "requests to it. Serve them under a domain registered separately (by the Public Suffix List).",
            id="velocity.E010",
        )
    ]


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
            id="velocity.E011",
        )
    ]


@register()
def check_warm_pool(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    # A pool setting that contradicts another would fail every refill and blank the dashboard's pool card.
    try:
        pool_policy(memory_mb=settings.PREVIEW_MACHINE_MEMORY_MB)
    except ValueError as exc:
        return [
            Error(
                f"The warm pool's settings are invalid: {exc}.",
                hint="See docs/machines.md, 'The warm pool': WARM_POOL_MIN <= WARM_POOL_MAX, a budget in dollars.",
                id="velocity.E012",
            )
        ]
    return []
