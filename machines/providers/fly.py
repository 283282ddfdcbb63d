"""A ``MachineProvider`` for the Fly Machines REST API (v1), on a synchronous httpx client.

Reference: shared/ref/fly-machines-api.md and the official OpenAPI spec beside it; the contract
tests validate every request this module sends against that spec. No Django here: the glue
that builds a ``FlyConfig`` from settings lives with the Django app.
"""

from __future__ import annotations

import builtins
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from machines.providers.base import (
    MANAGED_KEY,
    BadRequest,
    Conflict,
    Guest,
    MachineSpec,
    MachineState,
    NotFound,
    ProviderError,
    ProviderMachine,
    RateLimited,
    Unavailable,
    WaitTimeout,
    parse_state,
)
from machines.providers.fly_wire import error_from_response, machine_from_json
from machines.providers.pacing import ActionPacer, Limit

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.machines.dev"
# The wait endpoint blocks at most 60 s per call (Fly's proxy timeout); longer waits loop.
MAX_WAIT_WINDOW = 60
WAITABLE_STATES = frozenset(
    {
        MachineState.STARTED,
        MachineState.STOPPED,
        MachineState.SUSPENDED,
        MachineState.DESTROYED,
        MachineState.FAILED,
    }
)
# Fly's docs require the machine version when waiting for these states.
VERSIONED_WAIT_STATES = frozenset({MachineState.STOPPED, MachineState.DESTROYED})
ACTION_LIMIT = Limit(rate=1.0, burst=3)
GET_LIMIT = Limit(rate=5.0, burst=10)
LIST_PAGE_SIZE = 500
# Told about every HTTP attempt: (operation, status or None when no answer came, seconds). Metrics use it.
RequestHook = Callable[[str, int | None, float], None]


@dataclass(frozen=True)
class FlyConfig:
    api_token: str = field(repr=False)
    app_name: str
    base_url: str = DEFAULT_BASE_URL
    region: str | None = None
    image: str | None = None
    cpu_kind: str = "shared"
    cpus: int = 1
    memory_mb: int = 512
    internal_port: int = 8080
    # The seed's service publishes port 8080 over plain http. An editor served over https can
    # only embed an https preview, so by default 443 (tls) and 80 (redirect) are added too.
    public_https: bool = True
    restart_max_retries: int = 3
    request_timeout: float = 30.0
    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    # A Retry-After longer than this is not slept through: the caller gets RateLimited.
    max_retry_after: float = 30.0
    poll_interval: float = 0.5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FlyConfig:
        """Build from environment-style names (``os.environ`` or a dict made from settings)."""
        missing = [name for name in ("FLY_API_TOKEN", "FLY_APP_NAME") if not env.get(name)]
        if missing:
            raise ValueError(f"missing required settings: {', '.join(missing)}")
        return cls(
            api_token=env["FLY_API_TOKEN"],
            app_name=env["FLY_APP_NAME"],
            base_url=env.get("FLY_API_BASE_URL") or DEFAULT_BASE_URL,
            region=env.get("FLY_REGION") or None,
            image=env.get("PREVIEW_CONTAINER_IMAGE") or None,
        )


def authorization_header(token: str) -> str:
    """Macaroon tokens (``FlyV1 fm2_...``) go as they are; anything else is a bearer token."""
    token = token.strip()
    return token if token.startswith("FlyV1 ") else f"Bearer {token}"


class _Retryable(Exception):
    """One attempt failed in a way worth retrying. ``ambiguous``: the action may have happened."""

    def __init__(self, error: ProviderError, *, ambiguous: bool, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.ambiguous = ambiguous
        self.retry_after = retry_after


class FlyProvider:
    """Fly Machines client. Thread-safe; one instance per process is enough."""

    def __init__(
        self,
        config: FlyConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        on_request: RequestHook | None = None,
    ) -> None:
        self.config = config
        self._on_request = on_request
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._pacer = ActionPacer(default=ACTION_LIMIT, limits={"get": GET_LIMIT}, clock=clock, sleep=sleep)
        self._http = httpx.Client(
            base_url=config.base_url,
            transport=transport,
            timeout=config.request_timeout,
            headers={"User-Agent": "velocity-orchestrator"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FlyProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the MachineProvider interface -------------------------------------------------------

    def create(self, spec: MachineSpec) -> ProviderMachine:
        """Create the machine named ``spec.name`` once, however often the request is retried.

        Fly has no idempotency key for machines. After a failure that may have created the
        machine anyway (timeout, dropped connection, 5xx), look it up by name and metadata
        before posting again; a name conflict also resolves to the existing machine.
        """
        body = self.create_body(spec)
        ambiguous = False
        for attempt in range(1, self.config.max_attempts + 1):
            if ambiguous and (found := self._find_by_name(spec)) is not None:
                return found
            try:
                response = self._attempt("create", "POST", self._machines_path(), scope="app", json=body)
            except Conflict:
                if (found := self._find_by_name(spec)) is not None:
                    return found
                raise
            except _Retryable as failure:
                ambiguous = ambiguous or failure.ambiguous
                last = attempt == self.config.max_attempts
                if last and ambiguous and (found := self._find_by_name(spec)) is not None:
                    return found  # the final attempt did create it
                self._back_off(failure, attempt)
                continue
            return self._machine(response.json())
        raise AssertionError("unreachable")  # _back_off raises on the last attempt

    def start(self, machine_id: str) -> None:
        self._request("start", "POST", self._machine_path(machine_id, "start"), scope=machine_id)

    def stop(self, machine_id: str) -> None:
        self._request("stop", "POST", self._machine_path(machine_id, "stop"), scope=machine_id)

    def suspend(self, machine_id: str) -> None:
        """``POST .../suspend``: Fly snapshots the machine; the next ``start`` resumes from the snapshot
        (Fly tries to, and boots cold when it cannot)."""
        self._request("suspend", "POST", self._machine_path(machine_id, "suspend"), scope=machine_id)

    def restart(self, machine_id: str) -> None:
        """``POST .../restart?signal=SIGKILL``: a hung agent would sit out a polite signal's whole timeout."""
        params = {"signal": "SIGKILL"}
        self._request("restart", "POST", self._machine_path(machine_id, "restart"), scope=machine_id, params=params)

    def destroy(self, machine_id: str, *, force: bool = True) -> None:
        params = {"force": "true" if force else "false"}
        try:
            self._request("destroy", "DELETE", self._machine_path(machine_id), scope=machine_id, params=params)
        except NotFound:
            return

    def get(self, machine_id: str) -> ProviderMachine:
        response = self._request("get", "GET", self._machine_path(machine_id), scope=machine_id)
        return self._machine(response.json())

    def list(self, metadata: Mapping[str, str] | None = None) -> builtins.list[ProviderMachine]:
        """Machines whose metadata holds every given pair, all pages.

        The filter is also applied here: should the API ever ignore a filter, foreign machines
        must still never look like ours to the reconciler.
        """
        wanted = dict(metadata or {})
        params: dict[str, str] = {f"metadata.{key}": value for key, value in wanted.items()}
        params["limit"] = str(LIST_PAGE_SIZE)
        machines: builtins.list[ProviderMachine] = []
        while True:
            response = self._request("list", "GET", self._machines_path(), scope="app", params=params)
            machines.extend(self._machine(item) for item in response.json())
            cursor = response.headers.get("fly-next-cursor")
            if not cursor:
                break
            params["cursor"] = cursor
        return [m for m in machines if all(m.metadata.get(k) == v for k, v in wanted.items())]

    def wait_for_state(
        self,
        machine_id: str,
        state: MachineState,
        *,
        timeout: float,
        version: str | None = None,
    ) -> MachineState:
        deadline = self._clock() + timeout
        if state not in WAITABLE_STATES:
            return self._poll_for_state(machine_id, state, deadline)
        if state in VERSIONED_WAIT_STATES and version is None:
            try:
                version = self.get(machine_id).version
            except NotFound:
                if state is MachineState.DESTROYED:
                    return state
                raise
        while (remaining := deadline - self._clock()) > 0:
            reached = self._wait_once(machine_id, state, version, remaining)
            if reached is not None:
                return reached
        raise WaitTimeout("machine did not reach the state in time", code=str(state))

    # -- request bodies ----------------------------------------------------------------------

    def create_body(self, spec: MachineSpec) -> dict[str, Any]:
        """The CreateMachineRequest: the deployment plan's machine config (seed section 6.2)."""
        image = spec.image or self.config.image
        if not image:
            raise BadRequest("no image: set PREVIEW_CONTAINER_IMAGE or MachineSpec.image")
        guest = spec.guest or Guest(self.config.cpu_kind, self.config.cpus, self.config.memory_mb)
        machine_config: dict[str, Any] = {
            "image": image,
            "guest": {"cpu_kind": guest.cpu_kind, "cpus": guest.cpus, "memory_mb": guest.memory_mb},
            "services": [self._service()],
            "checks": self._checks(),
            "auto_destroy": True,
            "restart": {"policy": "on-failure", "max_retries": self.config.restart_max_retries},
            "env": dict(spec.env),
            "metadata": {**spec.metadata, MANAGED_KEY: "true"},
        }
        body: dict[str, Any] = {"name": spec.name, "config": machine_config}
        region = spec.region or self.config.region
        if region:
            body["region"] = region
        return body

    def _service(self) -> dict[str, Any]:
        ports: builtins.list[dict[str, Any]] = [{"port": self.config.internal_port, "handlers": ["http"]}]
        if self.config.public_https:
            ports.append({"port": 443, "handlers": ["tls", "http"]})
            ports.append({"port": 80, "handlers": ["http"], "force_https": True})
        return {"ports": ports, "protocol": "tcp", "internal_port": self.config.internal_port}

    def _checks(self) -> dict[str, Any]:
        """Fly's own HTTP check on the agent's ``/health``: its result shows in ``fly machine status`` and the
        machine's ``checks``, beside the orchestrator's watch (which acts on it)."""
        return {
            "agent": {
                "type": "http",
                "port": self.config.internal_port,
                "method": "GET",
                "path": "/health",
                "interval": "15s",
                "timeout": "2s",
                "grace_period": "30s",
            }
        }

    # -- waiting -----------------------------------------------------------------------------

    def _wait_once(
        self, machine_id: str, state: MachineState, version: str | None, remaining: float
    ) -> MachineState | None:
        window = max(1, min(MAX_WAIT_WINDOW, int(remaining)))
        params = {"state": str(state), "timeout": str(window)}
        if version:
            params["version"] = version
        path = self._machine_path(machine_id, "wait")
        try:
            response = self._request(
                "wait", "GET", path, scope=machine_id, params=params, timeout=window + self.config.request_timeout
            )
        except WaitTimeout:
            return None  # 408: the window ran out on Fly's side; loop until our deadline
        except NotFound:
            if state is MachineState.DESTROYED:
                return state  # already gone for good
            raise
        reached = parse_state(str(response.json().get("state") or state))
        return reached or state

    def _poll_for_state(self, machine_id: str, state: MachineState, deadline: float) -> MachineState:
        # Fly's wait endpoint only knows persistent states; transient ones are polled.
        while self._clock() < deadline:
            if self.get(machine_id).state is state:
                return state
            self._sleep(self.config.poll_interval)
        raise WaitTimeout("machine did not reach the state in time", code=str(state))

    def _find_by_name(self, spec: MachineSpec) -> ProviderMachine | None:
        candidates = self.list({**spec.metadata, MANAGED_KEY: "true"})
        live = [m for m in candidates if m.name == spec.name and m.state is not MachineState.DESTROYED]
        return live[0] if live else None

    # -- HTTP --------------------------------------------------------------------------------

    def _request(
        self,
        action: str,
        method: str,
        path: str,
        *,
        scope: str,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """An idempotent call: retried on any retryable failure, ambiguous or not."""
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return self._attempt(action, method, path, scope=scope, params=params, timeout=timeout)
            except _Retryable as failure:
                self._back_off(failure, attempt)
        raise AssertionError("unreachable")  # _back_off raises on the last attempt

    def _attempt(
        self,
        action: str,
        method: str,
        path: str,
        *,
        scope: str,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One paced request. Raises ``_Retryable`` or a final ``ProviderError``."""
        self._pacer.acquire(action, self.config.app_name if scope == "app" else scope)
        headers = {"Authorization": authorization_header(self.config.api_token)}
        started = time.perf_counter()
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            self._report(action, None, started)
            raise self._transport_failure(action, scope, exc) from exc
        self._report(action, response.status_code, started)
        if response.is_success:
            return response
        raise self._failure(action, scope, response)

    def _report(self, action: str, status: int | None, started: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(action, status, time.perf_counter() - started)
        except Exception:
            logger.exception("fly request hook failed", extra={"fly_action": action})

    def _transport_failure(self, action: str, scope: str, exc: httpx.TransportError) -> _Retryable:
        # A connect error means nothing reached Fly: safe to send again, even a create. Any
        # other (a read timeout, a dropped connection) leaves the action's fate unknown.
        unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        logger.warning(
            "fly request got no answer",
            extra={"fly_action": action, "fly_scope": scope, "error_type": type(exc).__name__, "sent": not unsent},
        )
        reason = "cannot connect" if unsent else "no response"
        return _Retryable(Unavailable(f"{reason}: {type(exc).__name__}"), ambiguous=not unsent)

    def _failure(self, action: str, scope: str, response: httpx.Response) -> Exception:
        error = error_from_response(response)
        # 404 and 408 are routine (an idempotent destroy, a wait window running out).
        level = logging.INFO if response.status_code in (404, 408) else logging.WARNING
        logger.log(
            level,
            "fly request failed",
            extra={
                "fly_action": action,
                "fly_scope": scope,
                "http_status": response.status_code,
                "fly_request_id": error.request_id,
                "fly_error_code": error.code,
            },
        )
        if isinstance(error, RateLimited):
            return _Retryable(error, ambiguous=False, retry_after=error.retry_after)
        if response.status_code >= 500:
            return _Retryable(error, ambiguous=True)
        return error

    def _back_off(self, failure: _Retryable, attempt: int) -> None:
        """Sleep before the next attempt, or raise the failure when retrying is over."""
        retry_after = failure.retry_after
        if attempt >= self.config.max_attempts or (retry_after or 0) > self.config.max_retry_after:
            raise failure.error
        ceiling = min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempt - 1))
        delay = ceiling * (0.5 + self._jitter() / 2)  # "equal jitter": spread, never near zero
        self._sleep(max(delay, retry_after or 0.0))

    def _machines_path(self) -> str:
        return f"/v1/apps/{quote(self.config.app_name, safe='')}/machines"

    def _machine_path(self, machine_id: str, action: str | None = None) -> str:
        path = f"{self._machines_path()}/{quote(machine_id, safe='')}"
        return f"{path}/{action}" if action else path

    def _machine(self, data: Mapping[str, Any]) -> ProviderMachine:
        return machine_from_json(data, app_name=self.config.app_name)
