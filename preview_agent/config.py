"""Environment → one frozen configuration object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .sandbox import Sandbox, SandboxError, sandbox_from_env

DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024


class ConfigError(ValueError):
    """A variable is present but unusable; the message names it (never its value)."""


@dataclass(frozen=True)
class Config:
    project_id: str
    session_id: str
    realtime_url: str
    orchestrator_url: str
    project_dir: Path
    port: int = 8080
    host: str = ""  # every interface, IPv4 and IPv6: Fly's private network (*.internal) is IPv6
    inactivity_timeout: float = 1800.0
    dev_command: str = ""
    dev_port: int = 0
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    log_rate_per_second: float = 5.0
    realtime_send_rate: float = 20.0
    activity_report_interval: float = 30.0
    heartbeat_interval: float = 5.0
    assignment_poll_interval: float = 2.0
    realtime_key: str = field(default="", repr=False)
    machine_token: str = field(default="", repr=False)
    sandbox: Sandbox | None = None  # who runs the user's code; None: the agent's own user

    @property
    def channel_name(self) -> str:
        return f"project:{self.project_id}"

    def with_assignment(self, *, project_id: str, session_id: str, realtime_key: str) -> Config:
        key = realtime_key or self.realtime_key
        return replace(self, project_id=project_id, session_id=session_id, realtime_key=key)


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}")
    return value


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().rstrip("/")
    if value and not value.lower().startswith(schemes):
        raise ConfigError(f"{name} must start with {' or '.join(schemes)}")
    return value


def _sandbox(env: Mapping[str, str], euid: int) -> Sandbox | None:
    try:
        return sandbox_from_env(env, euid=euid)
    except SandboxError as error:
        raise ConfigError(str(error)) from None


def load_config(env: Mapping[str, str] | None = None, *, euid: int | None = None) -> Config:
    env = os.environ if env is None else env
    port = int(_number(env, "PORT", 8080, minimum=1))
    if port > 65535:
        raise ConfigError("PORT must be a TCP port")
    return Config(
        project_id=env.get("PROJECT_ID", "").strip(),
        session_id=env.get("SESSION_ID", "").strip(),
        realtime_url=_url(env, "REALTIME_URL", ("http://", "https://", "ws://", "wss://")),
        realtime_key=env.get("REALTIME_KEY", "").strip(),
        orchestrator_url=_url(env, "ORCHESTRATOR_URL", ("http://", "https://")),
        machine_token=env.get("MACHINE_TOKEN", "").strip(),
        project_dir=Path(env.get("PROJECT_DIR", "") or "/app/project").absolute(),
        port=port,
        host=env.get("HOST", "").strip(),
        inactivity_timeout=_number(env, "INACTIVITY_TIMEOUT", 1800, minimum=0.1),
        dev_command=env.get("DEV_COMMAND", "").strip(),
        dev_port=int(_number(env, "DEV_PORT", 0)),
        max_file_bytes=int(_number(env, "MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES, minimum=1)),
        log_rate_per_second=_number(env, "LOG_RATE_PER_SECOND", 5, minimum=0.1),
        realtime_send_rate=_number(env, "REALTIME_SEND_RATE", 20, minimum=1),
        activity_report_interval=_number(env, "ACTIVITY_REPORT_INTERVAL", 30),
        heartbeat_interval=_number(env, "AGENT_HEARTBEAT_SECONDS", 5, minimum=0.1),
        assignment_poll_interval=_number(env, "ASSIGNMENT_POLL_INTERVAL", 2, minimum=0.05),
        sandbox=_sandbox(env, os.geteuid() if euid is None else euid),
    )
