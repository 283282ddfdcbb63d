"""A fake Fly Machines API on a real loopback HTTP server, for faults we cannot otherwise cause.

The real API cannot be asked to answer 429, 500 or 503 on cue, to stall past a client timeout,
or to drop a connection after it has created a machine; those are exactly the failures the
client's retries, pacing and idempotent create exist for. The fake runs a real
``ThreadingHTTPServer`` in a thread, so timeouts and dropped connections are real socket events.

It implements only the calls the client makes, with Fly's shapes. Where Fly's docs and its
spec differ, the fake follows the spec: start, stop and delete answer 200 with no body (the docs
show small JSON bodies; the client reads none of them). When given a ``SpecContract``
(``spec_contract.py``) it validates every request it receives and every normal response it sends against Fly's
official OpenAPI spec, so neither the client nor the fake can drift from Fly. Injected faults
are not validated: the spec documents no 429 or 5xx bodies.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from werkzeug.datastructures import Headers

from machines.testing.spec_contract import Answer, SpecContract, WireRequest

_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"^/v1/apps/(?P<app>[^/]+)/machines$"), "list"),
    ("POST", re.compile(r"^/v1/apps/(?P<app>[^/]+)/machines$"), "create"),
    ("GET", re.compile(r"^/v1/apps/(?P<app>[^/]+)/machines/(?P<id>[^/]+)$"), "get"),
    ("DELETE", re.compile(r"^/v1/apps/(?P<app>[^/]+)/machines/(?P<id>[^/]+)$"), "destroy"),
    ("POST", re.compile(r"^/v1/apps/(?P<app>[^/]+)/machines/(?P<id>[^/]+)/start$"), "start"),
    ("POST", re.compile(r"^/v1/apps/(?P<app>[^/]+)/machines/(?P<id>[^/]+)/stop$"), "stop"),
    ("POST", re.compile(r"^/v1/apps/(?P<app>[^/]+)/machines/(?P<id>[^/]+)/suspend$"), "suspend"),
    ("POST", re.compile(r"^/v1/apps/(?P<app>[^/]+)/machines/(?P<id>[^/]+)/restart$"), "restart"),
    ("GET", re.compile(r"^/v1/apps/(?P<app>[^/]+)/machines/(?P<id>[^/]+)/wait$"), "wait"),
)


@dataclass(frozen=True)
class Fault:
    """What to do instead of answering at once.

    ``apply``: perform the real operation first, so the client's failure is ambiguous (the
    machine exists); ``delay``: then sleep this many real seconds (a slow response); then
    ``drop`` the connection without answering, or answer ``status`` (``retry_after`` adds the
    header), or else send the real answer late.
    """

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    drop: bool = False
    apply: bool = False


@dataclass(frozen=True)
class Recorded:
    action: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    body: Any
    at: float

    def param(self, name: str) -> str | None:
        return next((value for key, value in self.query if key == name), None)


@dataclass(frozen=True)
class _Call:
    action: str
    match: dict[str, str]
    query: dict[str, str]
    body: Any
    wire: WireRequest


class FakeFly:
    """In-memory machines of one app behind a loopback HTTP server."""

    def __init__(self, *, contract: SpecContract | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.contract = contract
        self.clock = clock
        self.machines: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.operations: set[str] = set()
        self.validated_responses = 0
        self.page_size: int | None = None
        self._faults: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeFly:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, action: str, *faults: Fault) -> None:
        """Queue faults for the next calls of ``action`` (create, get, list, start, ...)."""
        self._faults.setdefault(action, deque()).extend(faults)

    def calls(self, action: str) -> list[Recorded]:
        return [r for r in self.requests if r.action == action]

    def add_machine(self, name: str, *, state: str = "started", metadata: dict[str, str] | None = None) -> str:
        body = {"name": name, "config": {"image": "img", "metadata": metadata or {}}}
        return str(self._create(body)["id"])

    # -- request handling (server threads) -----------------------------------------------

    def receive(self, method: str, url: str, headers: Headers, raw: bytes) -> tuple[Fault | None, _Call]:
        """Record and validate a request; return the fault queued for it, if any."""
        split = urlsplit(url)
        query = parse_qsl(split.query, keep_blank_values=True)
        action, match = _route(method, split.path)
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(
                Recorded(action, method, split.path, tuple(query), dict(headers.items()), body, self.clock())
            )
            fault = self._next_fault(action)
        wire = WireRequest(method, split.path, query, headers, raw)
        self._check_request(wire)
        return fault, _Call(action, match, dict(query), body, wire)

    def answer(self, call: _Call) -> Answer:
        """Perform the call on the in-memory machines and validate the answer."""
        with self._lock:
            answer = self._dispatch(call.action, call.match, call.query, call.body)
        self._check_response(call.wire, answer)
        return answer

    def _next_fault(self, action: str) -> Fault | None:
        queue = self._faults.get(action)
        return queue.popleft() if queue else None

    def _check_request(self, wire: WireRequest) -> None:
        if self.contract is None:
            return
        self.operations.add(self.contract.operation_id(wire))
        self.violations.extend(f"request {wire.method} {wire.path}: {e}" for e in self.contract.request_errors(wire))

    def _check_response(self, wire: WireRequest, answer: Answer) -> None:
        if self.contract is None:
            return
        errors = self.contract.response_errors(wire, answer)
        self.validated_responses += 1
        self.violations.extend(f"response {wire.method} {wire.path}: {e}" for e in errors)

    def _dispatch(self, action: str, match: dict[str, str], query: dict[str, str], body: Any) -> Answer:
        if action == "create":
            return self._create_answer(body)
        if action == "list":
            return self._list(query)
        machine = self.machines.get(match.get("id", ""))
        if machine is None or (machine["state"] == "destroyed" and action != "wait"):
            return Answer(404, {"error": "machine not found"})
        return getattr(self, f"_{action}")(machine, query)

    def _create_answer(self, body: dict[str, Any]) -> Answer:
        name = body.get("name")
        if any(m["name"] == name and m["state"] != "destroyed" for m in self.machines.values()):
            return Answer(409, {"error": f"a machine named {name} already exists"})
        machine = self._create(body)
        return Answer(200, {**machine, "state": "starting"})

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        machine_id = secrets.token_hex(7)
        machine = {
            "id": machine_id,
            "name": body.get("name") or f"fake-{machine_id}",
            "state": "started",
            "region": body.get("region", "iad"),
            "instance_id": _ulid(),
            "version": _ulid(),
            "private_ip": "fdaa:0:1:a7b:1::2",
            "config": body["config"],
            "image_ref": {"registry": "registry.fly.io", "repository": "preview", "tag": "latest"},
            "created_at": "2026-11-27T13:00:00.123456789Z",
            "updated_at": "2026-11-27T13:00:01Z",
            "events": [],
        }
        self.machines[machine_id] = machine
        return machine

    def _list(self, query: dict[str, str]) -> Answer:
        wanted = {k.removeprefix("metadata."): v for k, v in query.items() if k.startswith("metadata.")}
        found = [
            m
            for m in self.machines.values()
            if m["state"] != "destroyed" and all(m["config"].get("metadata", {}).get(k) == v for k, v in wanted.items())
        ]
        start = int(query.get("cursor", "0"))
        size = self.page_size or len(found) or 1
        page, rest = found[start : start + size], found[start + size :]
        return Answer(200, page, {"fly-next-cursor": str(start + size)} if rest else {})

    def _get(self, machine: dict[str, Any], query: dict[str, str]) -> Answer:
        return Answer(200, machine)

    def _start(self, machine: dict[str, Any], query: dict[str, str]) -> Answer:
        machine["state"] = "started"
        return Answer(200)

    def _stop(self, machine: dict[str, Any], query: dict[str, str]) -> Answer:
        machine["state"] = "stopped"
        return Answer(200)

    def _suspend(self, machine: dict[str, Any], query: dict[str, str]) -> Answer:
        machine["state"] = "suspended"  # the next _start resumes it
        return Answer(200)

    def _restart(self, machine: dict[str, Any], query: dict[str, str]) -> Answer:
        if machine["state"] != "started":
            return Answer(400, {"error": "machine is not started"})
        machine["instance_id"] = _ulid()  # Fly gives the restarted machine a new instance
        return Answer(200)

    def _destroy(self, machine: dict[str, Any], query: dict[str, str]) -> Answer:
        if machine["state"] == "started" and query.get("force") != "true":
            return Answer(412, {"error": "machine still active, stop it first or use force"})
        machine["state"] = "destroyed"
        return Answer(200)

    def _wait(self, machine: dict[str, Any], query: dict[str, str]) -> Answer:
        wanted = query.get("state", "started")
        if wanted in ("stopped", "destroyed") and "version" not in query and "instance_id" not in query:
            return Answer(400, {"error": "version is required when waiting for stopped or destroyed"})
        if machine["state"] != wanted:
            return Answer(408, {"error": "deadline_exceeded: timeout waiting for machine"})
        return Answer(200, {"ok": True, "state": wanted, "version": machine["version"], "event_id": _ulid()})


def _route(method: str, path: str) -> tuple[str, dict[str, str]]:
    for route_method, pattern, action in _ROUTES:
        if route_method == method and (match := pattern.match(path)):
            return action, match.groupdict()
    return "unknown", {}


def _ulid() -> str:
    return secrets.token_hex(13).upper()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeFly) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _serve(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fault, call = fake.receive(self.command, self.path, Headers(list(self.headers.items())), raw)
        if fault is None:
            self._write(fake.answer(call))
            return
        answer = fake.answer(call) if fault.apply else None
        time.sleep(fault.delay)
        if fault.drop:
            self.close_connection = True
        elif fault.status is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._write(Answer(fault.status, {"error": "injected fault"}, headers))
        else:
            self._write(answer or fake.answer(call))

    def _write(self, answer: Answer) -> None:
        payload = b"" if answer.body is None else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("fly-request-id", f"req-{secrets.token_hex(6)}")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@contextmanager
def running(fake: FakeFly) -> Iterator[FakeFly]:
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
