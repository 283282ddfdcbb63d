"""The alert and recording rules (deploy/prometheus/) and the Grafana dashboard (deploy/grafana/) against
promtool and against the metrics the application really exports: a metric renamed in code fails here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from sessions.services.lifecycle import FAILURE_REASONS
from velocity.testing import REPO_ROOT, require

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
RULE_FILES = sorted(PROMETHEUS.glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "velocity.json"
MONITORING_DOC = REPO_ROOT / "docs" / "monitoring.md"
# A metric name in PromQL: not part of a longer identifier, a recorded name (level:metric:op) or a label value.
METRIC = re.compile(r"(?<![\w:\"'])velocity_[a-zA-Z0-9_]+\b(?![\"'])")
RECORDED = re.compile(r"(?<![\w\"'])velocity:[a-zA-Z0-9_:]+")
# What each exported family's samples are called in PromQL.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    require(binary, "no promtool: install Debian's prometheus package (.ci/run does)")
    assert binary is not None
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=300, check=False)


def rules() -> Iterator[dict[str, Any]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def all_exprs() -> list[str]:
    return [rule["expr"] for rule in rules()] + dashboard_exprs()


def exported_names(text: str) -> set[str]:
    """Every name a query can use for the families in a /metrics text (a counter ``x`` is ``x_total``)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def test_promtool_accepts_the_rule_files() -> None:
    result = promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


def test_the_rules_unit_tests_pass_under_promtool() -> None:
    result = promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_a_wrong_expectation_fails_promtool(tmp_path: Path) -> None:
    """The unit tests can fail: the same quiet series, expected to fire, is a failure."""
    broken = yaml.safe_load((PROMETHEUS / "tests" / "workers.yml").read_text())
    broken["rule_files"] = [str(path) for path in RULE_FILES]
    broken["tests"][0]["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "page"}}]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    result = promtool("test", "rules", tmp_path / "broken.yml")
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr


def test_the_dashboards_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel query as a recording rule (Grafana's $__rate_interval as 5m)."""
    exprs = [expr.replace("$__rate_interval", "5m") for expr in dashboard_exprs()]
    records = [{"record": f"dashboard:query_{i}:check", "expr": expr} for i, expr in enumerate(exprs)]
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    result = promtool("check", "rules", tmp_path / "dashboard.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(exprs) >= 20


def test_the_dashboard_is_importable_anywhere() -> None:
    """One Prometheus data source chosen at import (no fixed uid), unique panel ids, panels inside the 24-column grid
    and not overlapping."""
    dashboard = json.loads(DASHBOARD.read_text())
    [variable] = dashboard["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert len(alerts) >= 10
    assert alerts - fired == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"


def anchors(doc: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-") for heading in headings}


def test_every_alert_names_its_runbook_section_in_the_monitoring_doc() -> None:
    for rule in rules():
        if "alert" in rule:
            path, _, anchor = rule["annotations"]["runbook"].partition("#")
            assert (REPO_ROOT / path) == MONITORING_DOC and anchor in anchors(MONITORING_DOC), rule["alert"]


def test_the_monitoring_docs_links_to_the_on_call_runbook_land_on_a_section() -> None:
    links = re.findall(r"\]\((dashboard\.md|)#([^)]+)\)", MONITORING_DOC.read_text())
    assert len(links) >= 10
    for doc, anchor in links:
        assert anchor in anchors(REPO_ROOT / "docs" / (doc or "monitoring.md")), f"{doc}#{anchor}"


def test_every_recorded_name_a_query_uses_is_recorded() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    used = {name for expr in all_exprs() for name in RECORDED.findall(expr)}
    assert used - recorded == set()
    assert recorded - used == set(), "recording rules nothing uses"


def test_the_failed_session_rule_counts_the_codes_failure_reasons() -> None:
    [rule] = [rule for rule in rules() if rule.get("record") == "velocity:sessions_failed:increase1h"]
    [reasons] = re.findall(r'reason=~"([^"]+)"', rule["expr"])
    assert set(reasons.split("|")) == {str(reason) for reason in FAILURE_REASONS}


@pytest.mark.django_db
def test_every_metric_the_rules_and_the_dashboard_use_is_on_the_apps_metrics_endpoint() -> None:
    response = APIClient().get("/metrics")
    assert response.status_code == 200
    exported = exported_names(response.content.decode())
    used = {name for expr in all_exprs() for name in METRIC.findall(expr)}
    assert len(used) >= 20
    assert used - exported == set(), "queried but not exported (renamed in code?)"


def test_a_renamed_metric_would_be_caught() -> None:
    """The name extraction sees names inside functions and selectors, not label values or recorded names."""
    expr = 'sum(rate(velocity_a_total{route!="velocity_b"}[5m])) / velocity:c:ratio + velocity_d_bucket'
    assert set(METRIC.findall(expr)) == {"velocity_a_total", "velocity_d_bucket"}
    text = "# HELP velocity_x_total x\n# TYPE velocity_x_total counter\nvelocity_x_total 1.0\n"
    assert {"velocity_x_total", "velocity_x"} <= exported_names(text)
    assert "velocity_renamed_total" not in exported_names(text)
