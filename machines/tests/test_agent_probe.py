"""Probing agents' /health: real sockets that answer, refuse, fail and hang, all probed in one bounded pool."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from machines.agent_probe import Probe, agent_base_url, probe_agents
from machines.models import Machine, Provider
from velocity.testing import free_port


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(self.status if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Failing(_Health):
    status = 503


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def healthy() -> Iterator[str]:
    yield from _serve(_Health)


@pytest.fixture
def failing() -> Iterator[str]:
    yield from _serve(_Failing)


@pytest.fixture
def hung() -> Iterator[str]:
    """A listening socket nobody reads: the kernel accepts the connection, nothing answers (a frozen agent)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_each_agent_gets_its_own_answer(healthy: str, failing: str, hung: str) -> None:
    keys = [uuid.uuid4() for _ in range(4)]
    urls = dict(zip(keys, [healthy, failing, hung, f"http://127.0.0.1:{free_port()}"], strict=True))
    probes = probe_agents(urls, timeout=0.5, concurrency=2)
    assert [probes[key] for key in keys] == [
        Probe(ok=True),
        Probe(ok=False, error="HTTP 503"),
        Probe(ok=False, error="no answer within 0.5 s"),
        Probe(ok=False, error="connection refused"),
    ]


def test_many_hung_agents_are_all_probed_and_nothing_is_probed_for_none(hung: str) -> None:
    urls = {uuid.uuid4(): hung for _ in range(10)}
    assert set(probe_agents(urls, timeout=0.2, concurrency=10).values()) == {
        Probe(ok=False, error="no answer within 0.2 s")
    }
    assert probe_agents({}, timeout=0.2, concurrency=10) == {}


def test_the_agent_is_reached_on_its_loopback_port_or_fly_private_network() -> None:
    local = Machine(provider=Provider.LOCAL, address="http://127.0.0.1:41234")
    fly = Machine(provider=Provider.FLY, address="3d8d9e1b.vm.velocity-previews.internal")
    assert agent_base_url(local) == "http://127.0.0.1:41234"
    assert agent_base_url(fly) == "http://3d8d9e1b.vm.velocity-previews.internal:8080"
    assert agent_base_url(Machine(provider=Provider.FLY, address="")) is None
