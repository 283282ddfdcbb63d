"""The agent as a real subprocess: HTTP surface, proxy, orchestrator reports, inactivity exit."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from velocity.testing import free_port, wait_until

from .conftest import MACHINE_TOKEN, AgentProcess, Recorder

StartAgent = Callable[..., AgentProcess]


def python_dev_server(port_var: str = "$PORT") -> str:
    return f"exec {sys.executable} -m http.server {port_var} --bind 127.0.0.1"


def test_it_reports_the_seed_health_fields_plus_project_files_and_activity(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "index.html").write_text("<h1>hello</h1>")
    (project / "src/app.js").write_text("console.log(1)")
    health = start_agent(project).health()
    assert health["status"] == "ok"
    assert health["devServer"] is True
    assert health["supabaseConnected"] is False
    assert (health["projectId"], health["sessionId"], health["fileCount"]) == ("proj-1", "sess-1", 2)
    assert health["devServerKind"] == "static"
    assert "lastActivity" in health and health["idleSeconds"] >= 0


def test_it_serves_a_static_project_and_its_updated_content(start_agent: StartAgent, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "index.html").write_text("<h1>version one</h1>")
    agent = start_agent(project)
    assert agent.get("/").text == "<h1>version one</h1>"
    (project / "index.html").write_text("<h1>version two</h1>")
    page = agent.get("/")
    assert page.text == "<h1>version two</h1>"
    assert page.headers["cache-control"] == "no-store"
    assert agent.get("/missing.js").status_code == 404
    head = httpx.head(agent.url + "/", timeout=10)
    assert (head.headers["content-length"], head.content) == (str(len("<h1>version two</h1>")), b"")


def test_it_serves_a_large_static_asset_whole(start_agent: StartAgent, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "media").mkdir(parents=True)
    video = os.urandom(3 * 1024 * 1024)
    (project / "media/clip.mp4").write_bytes(video)
    reply = start_agent(project).get("/media/clip.mp4")
    assert (reply.headers["content-type"], reply.content == video) == ("video/mp4", True)


def test_it_never_serves_a_file_outside_the_project(start_agent: StartAgent, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    project = tmp_path / "project"
    project.mkdir()
    (project / "leak").symlink_to(tmp_path)
    agent = start_agent(project)
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/leak/secret.txt", "/..%5csecret.txt"):
        reply = agent.get(path)
        assert reply.status_code == 404, path
        assert "secret" not in reply.text


def test_it_shows_a_self_refreshing_starting_page_until_the_dev_server_listens(
    start_agent: StartAgent,
) -> None:
    agent = start_agent(DEV_COMMAND="exec sleep 60")
    page = agent.get("/")
    assert page.status_code == 503
    assert 'http-equiv="refresh"' in page.text
    assert agent.health()["devServer"] is False


def test_it_proxies_requests_to_the_dev_server(start_agent: StartAgent, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.json").write_text('{"from": "dev server"}')
    agent = start_agent(project, DEV_COMMAND=python_dev_server())
    wait_until(lambda: agent.health()["devServer"], timeout=15)
    reply = agent.get("/data.json?x=1")
    assert reply.status_code == 200
    assert reply.json() == {"from": "dev server"}
    assert agent.health()["devServerKind"] == "custom"


def test_it_proxies_bodies_and_forwarding_headers_and_rewrites_host(start_agent: StartAgent) -> None:
    echo = Path(__file__).with_name("echo_server.py")
    agent = start_agent(DEV_COMMAND=f"exec {sys.executable} {echo}")
    wait_until(lambda: agent.health()["devServer"], timeout=15)
    payload = "x" * 200_000
    reply = httpx.post(
        agent.url + "/api/items?q=1", content=payload, headers={"Host": "preview.example.com"}, timeout=10
    )
    assert (reply.status_code, reply.headers["x-dev-server"]) == (201, "echo")
    seen = reply.json()
    assert (seen["method"], seen["path"], len(seen["body"])) == ("POST", "/api/items?q=1", 200_000)
    headers = {key.lower(): value for key, value in seen["headers"].items()}
    assert headers["host"].startswith("127.0.0.1:")  # dev servers refuse hosts they do not know
    assert (headers["x-forwarded-host"], headers["x-forwarded-for"]) == ("preview.example.com", "127.0.0.1")
    assert headers["connection"] == "close"


def test_it_reports_exit_and_ends_cleanly_on_sigterm(start_agent: StartAgent, orchestrator: Recorder) -> None:
    agent = start_agent(ORCHESTRATOR_URL=orchestrator.url)
    wait_until(lambda: orchestrator.of_type("ready"))
    assert agent.stop() == 0
    assert orchestrator.of_type("exit")[0]["reason"] == "signal"


def test_it_finds_a_dev_server_that_listens_only_on_ipv6_loopback(start_agent: StartAgent, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "hello.txt").write_text("over ipv6")
    agent = start_agent(project, DEV_COMMAND=python_dev_server().replace("127.0.0.1", "::1"))
    wait_until(lambda: agent.health()["devServer"], timeout=15)
    assert agent.get("/hello.txt").text == "over ipv6"


def test_it_keeps_the_agent_credentials_out_of_the_dev_server_environment(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    command = f"env > {tmp_path}/child-env.txt; {python_dev_server()}"
    agent = start_agent(project, DEV_COMMAND=command, REALTIME_KEY="realtime-secret")
    wait_until(lambda: agent.health()["devServer"], timeout=15)
    child_env = (tmp_path / "child-env.txt").read_text()
    assert MACHINE_TOKEN not in child_env
    assert "realtime-secret" not in child_env
    assert "\nHOST=127.0.0.1\n" in child_env


def test_it_keeps_the_last_500_dev_server_lines_for_the_logs_endpoint(start_agent: StartAgent) -> None:
    command = "for i in $(seq 1 700); do echo line-$i; done; " + python_dev_server()
    agent = start_agent(DEV_COMMAND=command)
    wait_until(lambda: any(e["line"] == "line-700" for e in agent.get("/logs").json()["lines"]), timeout=15)
    lines = agent.get("/logs").json()["lines"]
    assert len(lines) == 500
    assert {"t", "stream", "line"} <= set(lines[-1])


def test_it_restarts_a_crashed_dev_server(start_agent: StartAgent, tmp_path: Path) -> None:
    marker = tmp_path / "starts.txt"
    command = f"echo start >> {marker}; if [ $(wc -l < {marker}) -lt 2 ]; then exit 3; fi; {python_dev_server()}"
    agent = start_agent(DEV_COMMAND=command)
    wait_until(lambda: agent.health()["devServer"], timeout=20)
    assert marker.read_text().count("start") == 2
    assert any("exited with 3" in e["line"] for e in agent.get("/logs").json()["lines"])


def test_it_exits_zero_after_the_inactivity_timeout_and_reports_exit(
    start_agent: StartAgent, orchestrator: Recorder
) -> None:
    agent = start_agent(INACTIVITY_TIMEOUT="1.5", ORCHESTRATOR_URL=orchestrator.url)
    assert agent.process.wait(15) == 0
    [exit_event] = orchestrator.of_type("exit")
    assert (exit_event["reason"], exit_event["project_id"]) == ("idle", "proj-1")
    assert exit_event["idle_seconds"] >= 1.5


def test_preview_requests_count_as_activity(start_agent: StartAgent, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "index.html").write_text("hi")
    agent = start_agent(project, INACTIVITY_TIMEOUT="2")
    for _ in range(5):  # 2.5 s of requests, each well inside the timeout of the one before
        assert agent.get("/").status_code == 200
        time.sleep(0.5)
    assert agent.process.poll() is None
    assert agent.process.wait(15) == 0


def test_it_reports_ready_with_boot_steps_and_status_to_the_orchestrator(
    start_agent: StartAgent, orchestrator: Recorder
) -> None:
    start_agent(ORCHESTRATOR_URL=orchestrator.url, ACTIVITY_REPORT_INTERVAL="0.5")
    [ready] = wait_until(lambda: orchestrator.of_type("ready"))
    assert ready["session_id"] == "sess-1"
    assert {"http", "scan", "total"} <= set(ready["boot_steps"])
    assert ready["dev_server"] is True
    assert orchestrator.of_type("status")[0]["devServer"] is True
    assert all(h["Authorization"] == f"Bearer {MACHINE_TOKEN}" for h in orchestrator.headers)


def test_it_sends_a_heartbeat_with_its_status_every_interval(start_agent: StartAgent, orchestrator: Recorder) -> None:
    start_agent(ORCHESTRATOR_URL=orchestrator.url, AGENT_HEARTBEAT_SECONDS="0.2")
    beats = wait_until(lambda: orchestrator.of_type("heartbeat")[2:])
    assert {"devServer", "devServerState", "fileCount", "uptime"} <= set(beats[0])
    assert "supabaseConnected" not in beats[0]  # no realtime URL: nothing to be joined on
    assert 0 < beats[0]["memoryRatio"] <= 1 and 0 <= beats[0]["cpuRatio"] <= 1  # the third beat: CPU since the second
    assert beats[0]["session_id"] == "sess-1"


def test_it_reports_throttled_activity_for_preview_requests(start_agent: StartAgent, orchestrator: Recorder) -> None:
    agent = start_agent(ORCHESTRATOR_URL=orchestrator.url, ACTIVITY_REPORT_INTERVAL="1")
    for _ in range(5):
        agent.get("/")

    def reported() -> int:
        return sum(event.get("preview_requests", 0) for event in orchestrator.of_type("activity"))

    wait_until(lambda: reported() == 5)
    activity = orchestrator.of_type("activity")
    assert len(activity) <= 2  # one report per interval, not one per request
    assert activity[0]["source"] == "preview_requests"


def test_it_keeps_running_when_the_orchestrator_is_unreachable(start_agent: StartAgent) -> None:
    agent = start_agent(ORCHESTRATOR_URL=f"http://127.0.0.1:{free_port()}")
    time.sleep(1.5)  # long enough for the ready report's retries to have failed
    assert agent.process.poll() is None
    assert agent.health()["status"] == "ok"


def test_a_warm_pool_agent_waits_for_its_assignment_then_boots(start_agent: StartAgent, orchestrator: Recorder) -> None:
    orchestrator.assignments += [(204, None), (204, None)]
    orchestrator.assignments.append((200, {"project_id": "proj-9", "session_id": "sess-9", "realtime_key": "k"}))
    agent = start_agent(PROJECT_ID="", SESSION_ID="", ORCHESTRATOR_URL=orchestrator.url, ASSIGNMENT_POLL_INTERVAL="0.1")
    wait_until(lambda: agent.health()["projectId"] == "proj-9")
    [ready] = wait_until(lambda: orchestrator.of_type("ready"))
    assert (ready["project_id"], ready["session_id"]) == ("proj-9", "sess-9")
    assert "assignment" in ready["boot_steps"]


def test_it_refuses_to_start_with_an_invalid_port(start_agent: StartAgent) -> None:
    agent = start_agent(wait=False, PORT="not-a-port")
    assert agent.process.wait(10) == 2
    assert "PORT must be a number" in agent.output()


@pytest.mark.parametrize("path", ["/health", "/logs"])
def test_health_and_logs_do_not_count_as_activity(start_agent: StartAgent, path: str) -> None:
    agent = start_agent(INACTIVITY_TIMEOUT="1")
    agent.get(path)
    assert agent.process.wait(15) == 0
