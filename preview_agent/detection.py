"""What a project is and what it needs: dev-server detection and the npm install decision."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json")
INSTALL_TRIGGERS = ("package.json", *LOCKFILES)
INSTALL_MARKER = ".velocity-install-hash"


@dataclass(frozen=True)
class DevPlan:
    kind: str  # vite | next | expo | cra | npm-dev | npm-start | custom | static
    argv: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_static(self) -> bool:
        return self.kind == "static"


def read_package(project_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((project_dir / "package.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def detect(project_dir: Path, port: int, dev_command: str = "") -> DevPlan:
    env = {"PORT": str(port), "HOST": "127.0.0.1", "BROWSER": "none", "NO_COLOR": "1", "FORCE_COLOR": "0"}
    if dev_command:
        return DevPlan("custom", ("/bin/sh", "-c", dev_command), env)
    package = read_package(project_dir)
    if package is None:
        return DevPlan("static")
    deps = {**_dict(package.get("devDependencies")), **_dict(package.get("dependencies"))}
    scripts = _dict(package.get("scripts"))
    plan = _framework_plan(project_dir, deps, port, env)
    if plan is not None:
        return plan
    if "dev" in scripts:
        return DevPlan("npm-dev", ("npm", "run", "dev"), env)
    if "start" in scripts:
        return DevPlan("npm-start", ("npm", "start"), env)
    return DevPlan("static")


def _framework_plan(project_dir: Path, deps: dict[str, Any], port: int, env: dict[str, str]) -> DevPlan | None:
    def tool(name: str) -> str:
        local = project_dir / "node_modules" / ".bin" / name
        return str(local) if local.exists() else (shutil.which(name) or name)

    p = str(port)
    if "next" in deps:
        return DevPlan("next", (tool("next"), "dev", "--hostname", "127.0.0.1", "--port", p), env)
    if "expo" in deps:
        argv = (tool("expo"), "start", "--web", "--port", p, "--host", "localhost")
        return DevPlan("expo", argv, {**env, "CI": "1", "EXPO_NO_TELEMETRY": "1"})
    if "vite" in deps:
        return DevPlan("vite", (tool("vite"), "--host", "127.0.0.1", "--port", p, "--strictPort"), env)
    if "react-scripts" in deps:
        # WDS_SOCKET_PORT=0: the HMR socket uses the page's own port, i.e. comes through the proxy.
        return DevPlan("cra", (tool("react-scripts"), "start"), {**env, "WDS_SOCKET_PORT": "0"})
    return None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def install_hash(project_dir: Path) -> str | None:
    """Hash of package.json and the lockfile; None when there is nothing to install."""
    if not (project_dir / "package.json").is_file():
        return None
    digest = hashlib.sha256()
    for name in ("package.json", *LOCKFILES):
        with contextlib.suppress(OSError):
            digest.update(name.encode() + b"\0" + (project_dir / name).read_bytes())
    return digest.hexdigest()


def manifest_signature(project_dir: Path) -> tuple[tuple[int, int] | None, ...]:
    """Cheap change detection for package.json and the lockfiles: (mtime, size) of each."""
    signature: list[tuple[int, int] | None] = []
    for name in INSTALL_TRIGGERS:
        try:
            info = (project_dir / name).stat()
            signature.append((info.st_mtime_ns, info.st_size))
        except OSError:
            signature.append(None)
    return tuple(signature)


def needs_install(project_dir: Path) -> bool:
    wanted = install_hash(project_dir)
    if wanted is None:
        return False
    try:
        return (project_dir / "node_modules" / INSTALL_MARKER).read_text() != wanted
    except OSError:
        return True


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
