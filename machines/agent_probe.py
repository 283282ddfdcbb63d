"""Ask machines' agents ``GET /health`` with a short timeout, many at once: the agent watch's second signal.

A hung agent (SIGSTOPped, stuck in a loop) still has its socket: the kernel accepts the connection and nothing
answers, so only a timeout tells. The probes run in a bounded pool of threads, so a hundred hung agents cost
one timeout, not a hundred.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from machines.models import Machine, Provider

# The agent's port inside a Fly machine (the seed's service, ``FlyConfig.internal_port``).
FLY_AGENT_PORT = 8080


@dataclass(frozen=True)
class Probe:
    """The answer of an agent's ``/health``: ``ok``, or why not (``timeout``, ``refused``, ``HTTP 502``)."""

    ok: bool
    error: str = ""


def agent_base_url(machine: Machine) -> str | None:
    """Where the orchestrator reaches a machine's agent: its loopback port, or Fly's private network."""
    if not machine.address:
        return None
    if Provider(machine.provider).reached_directly:
        return machine.address.rstrip("/")
    return f"http://{machine.address}:{FLY_AGENT_PORT}"


def probe_agents(urls: Mapping[uuid.UUID, str], *, timeout: float, concurrency: int) -> dict[uuid.UUID, Probe]:
    """``/health`` of every agent in ``urls`` (key → base URL), at most ``concurrency`` at a time."""
    if not urls:
        return {}
    with (
        httpx.Client(timeout=timeout, headers={"User-Agent": "velocity-agent-watch"}) as client,
        ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(urls)))) as pool,
    ):
        answers = pool.map(lambda url: probe_one(client, url), urls.values())
        return dict(zip(urls.keys(), answers, strict=True))


def probe_one(client: httpx.Client, base_url: str) -> Probe:
    try:
        response = client.get(f"{base_url}/health")
    except httpx.TimeoutException:
        return Probe(ok=False, error=f"no answer within {_seconds(client.timeout.read)}")
    except httpx.TransportError as exc:
        return Probe(ok=False, error=_transport_reason(exc))
    if response.status_code != 200:
        return Probe(ok=False, error=f"HTTP {response.status_code}")
    return Probe(ok=True)


def _transport_reason(exc: httpx.TransportError) -> str:
    return "connection refused" if isinstance(exc, httpx.ConnectError) else type(exc).__name__


def _seconds(value: float | None) -> str:
    return f"{value:g} s" if value is not None else "the timeout"
