"""The fast resilience scenarios under ``make test``: a ``python -m resilience --fast`` run (its own orchestrator
in a temp var dir) per configuration, then one test per scenario on its outcome. Two configurations: the embedded
default (SQLite, the in-memory channel layer) and, with ``DATABASE_URL`` and ``REDIS_URL`` set (CI sets them),
PostgreSQL and Redis as production runs: a breach of one only (``/health`` after the first websocket, with Redis)
once went unseen because the scenarios ran embedded only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from resilience.run import FAST
from velocity.testing import REPO_ROOT, embedded_env, require

pytestmark = pytest.mark.slow
# Scenario name -> reason, for breaches found and not fixed yet (each runs as a strict xfail).
KNOWN_BREACHES: dict[str, str] = {}


@pytest.fixture(scope="module", params=["embedded", "postgresql_redis"])
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("resilience")
    report = folder / "outcomes.json"
    env = embedded_env(folder / "var")
    if request.param == "postgresql_redis":
        require(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"), "needs DATABASE_URL and REDIS_URL")
        env.update(DATABASE_URL=os.environ["DATABASE_URL"], REDIS_URL=os.environ["REDIS_URL"])
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
