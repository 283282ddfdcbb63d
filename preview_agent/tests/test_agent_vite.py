"""A real Vite project: installed by the agent with npm, served and hot-reloaded through its proxy."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from velocity.testing import require, wait_until

from .conftest import AgentProcess, spawn_agent

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _npm() -> None:
    require(shutil.which("npm"), "npm is not installed")


PACKAGE = {"name": "vite-preview", "private": True, "type": "module", "devDependencies": {"vite": "^7.1.0"}}


def vite_project(root: Path) -> Path:
    root.mkdir()
    (root / "package.json").write_text(json.dumps(PACKAGE))
    (root / "index.html").write_text(
        '<!doctype html><div id="app"></div><script type="module" src="/main.js"></script>'
    )
    (root / "main.js").write_text("document.querySelector('#app').textContent = 'one'\n")
    return root


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One Vite agent for the module (an install and a boot each cost seconds); the tests run in order."""
    root = tmp_path_factory.mktemp("vite")
    agent = spawn_agent(vite_project(root / "project"), root)
    yield agent
    agent.stop()


def test_it_installs_a_vite_project_and_hot_reloads_it_through_the_proxy(agent: AgentProcess) -> None:
    wait_until(lambda: agent.health()["devServer"], timeout=120)
    assert agent.health()["devServerKind"] == "vite"
    assert (agent.project_dir / "node_modules/.bin/vite").exists()
    page = agent.get("/")
    assert page.status_code == 200 and "/@vite/client" in page.text
    assert "'one'" in agent.get("/main.js").text
    token = re.search(r'wsToken = "([^"]+)"', agent.get("/@vite/client").text)
    ws_url = agent.url.replace("http", "ws", 1) + "/" + (f"?token={token.group(1)}" if token else "")
    with connect(ws_url, subprotocols=[Subprotocol("vite-hmr")], open_timeout=10) as hmr:
        assert json.loads(hmr.recv(10))["type"] == "connected"
        (agent.project_dir / "main.js").write_text("document.querySelector('#app').textContent = 'two'\n")
        kind = json.loads(hmr.recv(10))["type"]
    assert kind in ("update", "full-reload")
    assert "'two'" in agent.get("/main.js").text


def test_it_reinstalls_and_restarts_the_dev_server_when_package_json_changes(agent: AgentProcess) -> None:
    wait_until(lambda: agent.health()["devServer"], timeout=120)

    def log_lines() -> list[str]:
        return [entry["line"] for entry in agent.get("/logs").json()["lines"]]

    (agent.project_dir / "package.json").write_text(json.dumps({**PACKAGE, "description": "changed"}))
    wait_until(lambda: sum(line.startswith("started vite dev server") for line in log_lines()) == 2, timeout=60)
    assert sum(line.startswith("npm install exited with 0") for line in log_lines()) == 2
    wait_until(lambda: agent.health()["devServer"], timeout=30)
    assert agent.get("/").status_code == 200
