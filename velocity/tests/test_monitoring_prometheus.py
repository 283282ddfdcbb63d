"""A real Prometheus (Debian's prometheus package, the one that ships promtool) scraping a real orchestrator
with the rules of deploy/prometheus/ loaded: every rule evaluates without error on the live series."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from velocity.testing import REPO_ROOT, embedded_env, free_port, manage, require, wait_for_http, wait_until

RULE_FILES = sorted((REPO_ROOT / "deploy" / "prometheus").glob("*.yml"))
NEVER = "0001-01-01T00:00:00Z"  # Prometheus's lastEvaluation before the first one


def rule_count() -> int:
    return sum(len(group["rules"]) for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"])


def prometheus_config(tmp_path: Path, app_port: int) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in RULE_FILES],
        "scrape_configs": [{"job_name": "velocity", "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def evaluated_rules(api: str) -> list[dict[str, Any]] | None:
    """Every rule once evaluated after a successful scrape, else None (not yet)."""
    targets = httpx.get(f"{api}/targets").json()["data"]["activeTargets"]
    if not targets or targets[0]["health"] != "up":
        return None
    groups = httpx.get(f"{api}/rules").json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    if len(rules) < rule_count() or any(rule["lastEvaluation"] == NEVER for rule in rules):
        return None
    return rules


def query(api: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{api}/query", params={"query": expr}).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def alerts(api: str) -> set[tuple[str, str]]:
    return {(series["metric"]["alertname"], series["metric"]["alertstate"]) for series in query(api, "ALERTS")}


@pytest.mark.slow
def test_a_real_prometheus_scrapes_the_orchestrator_and_evaluates_every_rule(tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    require(binary, "no prometheus server: install Debian's prometheus package (.ci/run does)")
    assert binary is not None
    app_port, prometheus_port = free_port(), free_port()
    env = embedded_env(tmp_path, PORT=str(app_port), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "multiproc"))
    manage(env, "migrate", "-v0")
    argv = [
        binary,
        f"--config.file={prometheus_config(tmp_path, app_port)}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ]
    app = subprocess.Popen([sys.executable, "-m", "velocity.run", "web"], cwd=REPO_ROOT, env=env)
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{prometheus_port}/api/v1"
    try:
        wait_for_http(f"http://127.0.0.1:{app_port}/health", timeout=30)
        wait_for_http(f"http://127.0.0.1:{prometheus_port}/-/ready", timeout=30)
        wait_until(lambda: evaluated_rules(api), timeout=60, what="every rule evaluated with a target up")
        # Only the web process runs: no task cluster beats and no reconciliation ever ran, and nothing else is wrong.
        expected = {("VelocityWorkerDown", "pending"), ("VelocityReconcileStale", "pending")}
        wait_until(lambda: alerts(api) == expected, timeout=30, what=f"the alerts {expected}")
        rules = evaluated_rules(api) or []
        assert [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"] == []
        assert {series["metric"]["status"] for series in query(api, "velocity_sessions")} >= {"active", "ended"}
        assert query(api, 'velocity_http_request_duration_seconds_count{route="health"}')
    finally:
        for process in (server, app):
            process.terminate()
        assert app.wait(timeout=30) == 0
        server.wait(timeout=30)
        log.close()
