"""Production configuration: a clean ``check --deploy``, secrets from files, the release command, process roles."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from velocity import run
from velocity.schedules import SCHEDULES
from velocity.testing import embedded_env, manage


def production_env(tmp_path: Path) -> dict[str, str]:
    """What fly.toml's [env] and `flyctl secrets set` give the app, secrets mounted as files."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "django_secret_key").write_text("k" * 20 + "-a-long-random-production-secret-0123456789\n")
    (secrets / "fly_api_token").write_text("FlyV1 fm2_token\n")
    (secrets / "metrics_token").write_text("a-scrape-token\n")
    return embedded_env(
        tmp_path,
        DEBUG="false",
        LOG_FORMAT="json",
        ALLOWED_HOSTS="velocity-orchestrator.fly.dev",
        SUPABASE_URL="https://project.supabase.co",
        MACHINE_PROVIDER="fly",
        FLY_APP_NAME="velocity-previews",
        PREVIEW_HOST_SUFFIX="velocity-previews.dev",  # another registrable domain (velocity.E009, E010)
        DJANGO_SECRET_KEY_FILE=str(secrets / "django_secret_key"),
        FLY_API_TOKEN_FILE=str(secrets / "fly_api_token"),
        METRICS_TOKEN_FILE=str(secrets / "metrics_token"),
        PROMETHEUS_ENABLED="true",
    )


def test_check_deploy_is_clean_with_production_values(tmp_path: Path) -> None:
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in result.stdout


def test_secrets_come_from_the_files_named_by_name_file(tmp_path: Path) -> None:
    probe = "from django.conf import settings; print(settings.FLY_API_TOKEN, len(settings.SECRET_KEY))"
    result = manage(production_env(tmp_path), "shell", "-v", "0", "-c", probe)
    assert result.stdout.split() == ["FlyV1", "fm2_token", "63"]


def test_a_missing_production_secret_still_fails_the_check(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["DJANGO_SECRET_KEY_FILE"]
    result = manage(env, "check", "--deploy", check=False)
    assert result.returncode != 0
    assert "velocity.E001" in result.stderr


def test_production_without_a_metrics_token_fails_the_check(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["METRICS_TOKEN_FILE"]
    result = manage(env, "check", "--deploy", check=False)
    assert result.returncode != 0
    assert "velocity.E011" in result.stderr


@pytest.mark.django_db
def test_the_release_command_migrates_and_syncs_the_schedules() -> None:
    Schedule.objects.all().delete()
    out = StringIO()
    call_command("release", stdout=out, verbosity=0)
    assert set(Schedule.objects.values_list("name", flat=True)) == {spec.name for spec in SCHEDULES}
    assert "migrated and schedules synced" in out.getvalue()


def test_each_fly_process_group_runs_one_role() -> None:
    assert [argv[-1] for argv in run._children(["worker"])] == ["qcluster", "watch_agents"]
    assert [argv[-1] for argv in run._children(["bridge"])] == ["realtime_bridge"]
    assert run._children(["web"])[0][1:3] == ["-m", "daphne"]
    with pytest.raises(SystemExit, match="unknown role"):
        run._children(["cron"])
