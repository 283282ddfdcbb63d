"""The fast resilience scenarios under ``make test``: one ``python -m resilience --fast`` run (its own
orchestrator in a temp var dir), then one test per scenario on its outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from resilience.run import FAST
from velocity.testing import REPO_ROOT, embedded_env

pytestmark = pytest.mark.slow
# Scenario name -> reason, for breaches found and not fixed yet (each runs as a strict xfail).
KNOWN_BREACHES: dict[str, str] = {}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("resilience")
    report = folder / "outcomes.json"
    env = embedded_env(folder / "var")
    done = subprocess.run(
        [sys.executable, "-m", "resilience", "--fast", "--json", str(report)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if not report.exists():
        pytest.fail(f"python -m resilience --fast wrote no report:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {outcome["name"]: outcome for outcome in json.loads(report.read_text())}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BREACHES[n])) if n in KNOWN_BREACHES else n
        for n in FAST
    ],
)
def test_the_scenario_finds_no_breach(outcomes: dict[str, dict[str, Any]], name: str) -> None:
    outcome = outcomes[name]
    assert outcome["status"] in ("passed", "not run"), outcome["breaches"]
    assert outcome["did"], "the scenario did nothing"
    assert not outcome["breaches"]


def test_every_fast_scenario_reported(outcomes: dict[str, dict[str, Any]]) -> None:
    assert sorted(outcomes) == sorted(FAST)
