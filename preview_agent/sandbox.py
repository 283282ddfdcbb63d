"""Who runs the user's code: an unprivileged uid, never the agent's own identity.

The agent holds ``MACHINE_TOKEN`` and ``REALTIME_KEY`` in its environment, which any process of the same
uid can read at ``/proc/<pid>/environ``. So when the agent runs as root it starts every user-code process
(``npm install``, the dev server and whatever they run) as ``DEV_SERVER_USER`` (a name from
``/etc/passwd``) or ``DEV_SERVER_UID``/``DEV_SERVER_GID`` (numbers; the local provider gives each machine
its own), with no supplementary groups, umask 077, ``HOME`` at ``DEV_SERVER_HOME`` (or the user's home)
and an environment built from a short allowlist. Dropping to another uid needs root, so an agent that is
not root runs its dev server as itself and says so at startup.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What a sandboxed process inherits from the agent; everything else (the agent's own configuration,
# PYTHONPATH, the operator's variables) stays behind, and HOME, USER and LOGNAME are the sandbox's own.
PASSED_ENV = frozenset({"PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "NODE_OPTIONS"})
USER_CODE_UMASK = 0o077
CANNOT_DROP = "cannot drop privileges: the agent is not root, so the dev server runs as the agent's user"
RUNS_AS_ROOT = "no DEV_SERVER_USER or DEV_SERVER_UID: the dev server runs as root, like the agent"


class SandboxError(ValueError):
    """The sandbox variables are unusable; the message names the variable."""


@dataclass(frozen=True)
class Sandbox:
    uid: int
    gid: int
    home: Path
    name: str

    @property
    def owner(self) -> tuple[int, int]:
        return self.uid, self.gid

    def popen_kwargs(self) -> dict[str, Any]:
        """For ``subprocess``/``asyncio`` process creation: the switch happens in the child, before exec."""
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "umask": USER_CODE_UMASK}

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        kept = {key: value for key, value in env.items() if key in PASSED_ENV}
        home = str(self.home)
        return {**kept, "HOME": home, "USER": self.name, "LOGNAME": self.name, "npm_config_cache": f"{home}/.npm"}

    def prepare(self, project_dir: Path) -> None:
        """The home must exist and the project root must be the sandbox's, or npm cannot write to them."""
        for path in (self.home, project_dir):
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                if os.fstat(fd).st_uid != self.uid:
                    os.fchown(fd, self.uid, self.gid)
            finally:
                os.close(fd)


def sandbox_from_env(env: Mapping[str, str], *, euid: int) -> Sandbox | None:
    """The sandbox to drop to, or None when there is none to drop to (not root, or none configured)."""
    if euid != 0:
        return None
    name = env.get("DEV_SERVER_USER", "").strip()
    if name:
        return _from_user(name, env)
    raw_uid = env.get("DEV_SERVER_UID", "").strip()
    if raw_uid:
        return _from_ids(raw_uid, env)
    return None


def sandbox_warning(env: Mapping[str, str], *, euid: int) -> str | None:
    """What to say at startup when user code will run with the agent's identity."""
    configured = bool(env.get("DEV_SERVER_USER", "").strip() or env.get("DEV_SERVER_UID", "").strip())
    if euid != 0:
        return CANNOT_DROP if configured else None
    return None if configured else RUNS_AS_ROOT


def _from_user(name: str, env: Mapping[str, str]) -> Sandbox:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxError("DEV_SERVER_USER names no user") from None
    home = env.get("DEV_SERVER_HOME", "").strip() or entry.pw_dir
    return _checked(Sandbox(entry.pw_uid, entry.pw_gid, Path(home), name))


def _from_ids(raw_uid: str, env: Mapping[str, str]) -> Sandbox:
    uid = _id(raw_uid, "DEV_SERVER_UID")
    gid = _id(env.get("DEV_SERVER_GID", "").strip() or raw_uid, "DEV_SERVER_GID")
    home = env.get("DEV_SERVER_HOME", "").strip()
    if not home:
        raise SandboxError("DEV_SERVER_HOME is required with DEV_SERVER_UID")
    return _checked(Sandbox(uid, gid, Path(home), f"u{uid}"))


def _id(raw: str, variable: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SandboxError(f"{variable} must be a number") from None


def _checked(sandbox: Sandbox) -> Sandbox:
    if sandbox.uid == 0 or sandbox.gid == 0:
        raise SandboxError("the dev server's user must not be root (uid or gid 0)")
    if not sandbox.home.is_absolute():
        raise SandboxError("DEV_SERVER_HOME must be an absolute path")
    return sandbox
