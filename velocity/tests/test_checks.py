import subprocess
from pathlib import Path

import pytest
from django.core.checks import CheckMessage
from django.test import override_settings

from velocity.checks import (
    check_log_format,
    check_machine_provider,
    check_metrics_token,
    check_production_secrets,
    check_project_access,
)
from velocity.testing import embedded_env, manage


def ids(messages: list[CheckMessage]) -> list[str]:
    return [str(m.id) for m in messages]


def test_missing_secret_key_is_error_e001() -> None:
    with override_settings(SECRET_KEY="velocity-unset-secret-key"):
        assert "velocity.E001" in ids(check_production_secrets(None))


def test_missing_jwt_secret_and_jwks_is_error_e002() -> None:
    with override_settings(SUPABASE_JWT_SECRET="", SUPABASE_JWKS_URL=""):
        assert ids(check_production_secrets(None)) == ["velocity.E002"]


def test_fly_provider_without_credentials_is_error_e004() -> None:
    with override_settings(MACHINE_PROVIDER="fly", FLY_API_TOKEN="", FLY_APP_NAME=""):
        assert ids(check_machine_provider(None)) == ["velocity.E004"]
    with override_settings(MACHINE_PROVIDER="docker"):
        assert ids(check_machine_provider(None)) == ["velocity.E003"]


def test_unknown_log_format_is_error_e005() -> None:
    with override_settings(LOG_FORMAT="xml"):
        assert ids(check_log_format(None)) == ["velocity.E005"]


def test_project_access_backend_must_be_registry_or_supabase_e006() -> None:
    assert ids(check_project_access(None)) == []
    with override_settings(PROJECT_ACCESS_BACKEND="ldap"):
        assert ids(check_project_access(None)) == ["velocity.E006"]


@pytest.mark.parametrize(
    ("table", "column", "valid"),
    [
        ("public.projects", "id", True),
        ("Projects_2", "project_id", True),
        ('public."projects"', "id", False),
        ("a.b.c", "id", False),
        ("", "id", False),
        ("projects", "id; drop table x", False),
    ],
)
def test_the_supabase_backend_needs_plain_table_and_column_names_e008(table: str, column: str, valid: bool) -> None:
    with override_settings(
        PROJECT_ACCESS_BACKEND="supabase", PROJECT_ACCESS_SUPABASE_TABLE=table, PROJECT_ACCESS_SUPABASE_ID_COLUMN=column
    ):
        assert ("velocity.E008" in ids(check_project_access(None))) is not valid


def test_public_metrics_in_production_is_error_e011() -> None:
    with override_settings(DEBUG=False, METRICS_TOKEN=""):
        assert ids(check_metrics_token(None)) == ["velocity.E011"]
    with override_settings(DEBUG=False, METRICS_TOKEN="a-scrape-token"):
        assert ids(check_metrics_token(None)) == []
    with override_settings(DEBUG=True, METRICS_TOKEN=""):
        assert ids(check_metrics_token(None)) == []


def run_check(var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return manage(embedded_env(var_dir, **env), "check", check=False, timeout=60)


def test_production_without_secrets_fails_the_check_with_a_clear_message(tmp_path: Path) -> None:
    result = run_check(tmp_path, DEBUG="false", DJANGO_SECRET_KEY="", SUPABASE_JWT_SECRET="")
    assert result.returncode != 0
    assert "velocity.E001" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr
    assert "velocity.E002" in result.stderr


def test_embedded_mode_generates_its_secrets_once_into_var(tmp_path: Path) -> None:
    assert run_check(tmp_path, DJANGO_SECRET_KEY="", SUPABASE_JWT_SECRET="").returncode == 0
    first = (tmp_path / "secret_key").read_text(), (tmp_path / "jwt_secret").read_text()
    assert run_check(tmp_path, DJANGO_SECRET_KEY="", SUPABASE_JWT_SECRET="").returncode == 0
    assert ((tmp_path / "secret_key").read_text(), (tmp_path / "jwt_secret").read_text()) == first
    assert len(first[0]) >= 50


def test_the_supabase_backend_on_sqlite_fails_the_check_e007(tmp_path: Path) -> None:
    result = run_check(tmp_path, PROJECT_ACCESS_BACKEND="supabase")
    assert result.returncode != 0
    assert "velocity.E007" in result.stderr and "PostgreSQL" in result.stderr
