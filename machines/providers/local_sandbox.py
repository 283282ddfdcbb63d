"""Per-machine uids for the local provider: the user's code never runs as the orchestrator's user.

When the orchestrator is root, each local machine claims a uid of its own from a range
(``LOCAL_SANDBOX_UID_BASE`` .. ``+LOCAL_SANDBOX_UID_COUNT``) and a folder ``SANDBOX_ROOT/<uid>/`` that
holds its ``project`` and its ``home``, all owned by that uid and 0700. The agent stays root and starts
npm and the dev server as that uid (``DEV_SERVER_UID``/``GID``/``HOME``), so the user's code cannot read
the agent's ``/proc/<pid>/environ``, the machine's ``config.json``, ``var/`` or another machine's project.

One uid per machine, not one shared uid: two users' dev servers under one uid could read each other's
projects and signal each other's processes. The claim is the ``mkdir`` of ``SANDBOX_ROOT/<uid>``
(atomic), so orchestrator processes sharing the root never hand out one uid twice. The root itself is
root's and 0711: a uid can reach its own folder but not list the others. It cannot live under ``var/``,
which is 0700.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# Far above login uids and the usual /etc/subuid ranges of rootless containers (100000 + 65536 per user),
# below 2**31 so tools that store uids as signed 32-bit numbers still work. No passwd entry is needed.
DEFAULT_UID_BASE = 2_000_000_000
DEFAULT_UID_COUNT = 65_536
KILL_WAIT_SECONDS = 2.0
DEFAULT_ROOT = Path(tempfile.gettempdir()) / "velocity-sandboxes"
CANNOT_DROP = (
    "local provider: not running as root, so user code (npm install, dev servers) runs as the "
    "orchestrator's user and can read its secrets; run as root, or use the fly provider, for untrusted code"
)


class SandboxUnavailable(RuntimeError):
    """The sandbox root is unsafe (someone else's, or a symlink) or every uid of the range is taken."""


@dataclass(frozen=True)
class SandboxConfig:
    root: Path = DEFAULT_ROOT
    uid_base: int = DEFAULT_UID_BASE
    uid_count: int = DEFAULT_UID_COUNT


@dataclass(frozen=True)
class MachineSandbox:
    uid: int
    folder: Path

    @property
    def project(self) -> Path:
        return self.folder / "project"

    @property
    def home(self) -> Path:
        return self.folder / "home"

    def agent_env(self) -> dict[str, str]:
        uid = str(self.uid)
        return {"DEV_SERVER_UID": uid, "DEV_SERVER_GID": uid, "DEV_SERVER_HOME": str(self.home)}


def privilege_warning(*, euid: int) -> str | None:
    """Why user code would run with the orchestrator's identity, or None when it will not."""
    return None if euid == 0 else CANNOT_DROP


def sandbox_uid(name: str, attempt: int, *, config: SandboxConfig) -> int:
    """The uid a machine tries on its ``attempt``-th try: derived from its name, then the next ones."""
    start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return config.uid_base + (start + attempt) % config.uid_count


def sandbox_claim(name: str, *, config: SandboxConfig) -> MachineSandbox:
    """Claim a free uid and build its folder: ``project`` and ``home``, owned by the uid, 0700."""
    root = prepared_root(config.root)
    for attempt in range(config.uid_count):
        uid = sandbox_uid(name, attempt, config=config)
        folder = root / str(uid)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        _populate(folder, uid)
        return MachineSandbox(uid, folder)
    raise SandboxUnavailable("every uid of the local sandbox range is in use")


def sandbox_release(sandbox: MachineSandbox) -> None:
    """End whatever still runs as the uid (a daemon that left its process group), then free the uid."""
    kill_uid(sandbox.uid)
    shutil.rmtree(sandbox.folder, ignore_errors=True)  # fd-based on Linux: links inside are not followed


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid``: a shell that becomes the uid and signals -1 (every process it may
    signal, itself excepted) cannot miss one forked meanwhile, as a scan of /proc followed by kills could.
    /bin/sh, not our interpreter: the uid may not be allowed to run a Python that lives under /root."""
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        subprocess.run(
            ["/bin/sh", "-c", "kill -KILL -1"], user=uid, group=uid, extra_groups=[], env={}, timeout=10, check=False
        )
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while uid_running(uid) and time.monotonic() < deadline:
        time.sleep(0.02)  # SIGKILL is delivered asynchronously: the folder goes only once they are gone


def uid_running(uid: int) -> bool:
    """Does a process (not a zombie) run as ``uid`` (real, effective, saved or filesystem uid)?"""
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            if str(uid) in fields["Uid"].split() and not fields["State"].strip().startswith("Z"):
                return True
    return False


def prepared_root(root: Path) -> Path:
    """The sandbox root, created root-owned 0711; refused when it is a link or someone else's."""
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise SandboxUnavailable("the local sandbox root is not a folder owned by the orchestrator's user")
    # On every start. Others may pass through (to their own folder) but not list it.
    os.chmod(root, 0o711)  # noqa: S103
    if not others_can_reach(root.parent):
        logger.warning("local sandbox root is under a folder other users cannot enter", extra={"root": str(root)})
    return root


def others_can_reach(path: Path) -> bool:
    return all(os.stat(part).st_mode & stat.S_IXOTH for part in (path, *path.parents))


def _populate(folder: Path, uid: int) -> None:
    for child in ("project", "home"):
        (folder / child).mkdir(mode=0o700)
        os.chown(folder / child, uid, uid)
    os.chown(folder, uid, uid)
