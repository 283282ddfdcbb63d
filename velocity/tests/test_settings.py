import json
import subprocess
import sys
from pathlib import Path

from velocity.testing import REPO_ROOT, embedded_env

PROBE = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "broker": "redis" if "redis" in settings.Q_CLUSTER else "orm",
    "provider": settings.MACHINE_PROVIDER,
    "tz": settings.TIME_ZONE,
    "log_format": settings.LOG_FORMAT,
    "inactivity": settings.PREVIEW_INACTIVITY_TIMEOUT,
    "fly_base": settings.FLY_API_BASE_URL,
    "metrics_port": settings.METRICS_PORT,
    "jwks": settings.SUPABASE_JWKS_URL,
}))
"""


def probe(var_dir: Path, **env: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        env=embedded_env(var_dir, DJANGO_SETTINGS_MODULE="velocity.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(result.stdout))


def test_defaults_run_embedded_with_nothing_configured(tmp_path: Path) -> None:
    values = probe(tmp_path)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["db_name"] == str(tmp_path / "velocity.sqlite3")
    assert values["layer"] == "channels.layers.InMemoryChannelLayer"
    assert values["broker"] == "orm"
    assert (values["provider"], values["tz"], values["log_format"]) == ("local", "UTC", "console")
    assert values["inactivity"] == 1800
    assert values["fly_base"] == "https://api.machines.dev"
    assert values["metrics_port"] == 9091


def test_database_and_redis_urls_switch_to_postgres_and_redis(tmp_path: Path) -> None:
    values = probe(
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["layer"] == "channels_redis.core.RedisChannelLayer"
    assert values["broker"] == "redis"


def test_the_jwks_url_defaults_to_the_supabase_projects_well_known_path(tmp_path: Path) -> None:
    values = probe(tmp_path, SUPABASE_URL="https://abc.supabase.co/")
    assert values["jwks"] == "https://abc.supabase.co/auth/v1/.well-known/jwks.json"
