"""The playground's configuration: the sample projects that ship with the repository, and a short-lived
token that lets the operator's browser use the public API and the realtime endpoint like an editor."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings

from velocity.auth import issue_token

SAMPLES_DIR = Path(settings.BASE_DIR) / "samples"
SAMPLES = {"static": "Static page", "vite": "Vite app"}
TOKEN_TTL = 2 * 3600
OPERATOR_NAMESPACE = uuid.UUID("5b0f8a3c-6f1e-4b7e-9d55-0c1f1a7e2b11")
SKIPPED_DIRS = frozenset({"node_modules", ".vite", "dist"})


def operator_user_id(user: Any) -> uuid.UUID:
    """A stable Supabase-style user id for a Django operator, so their playground sessions are theirs."""
    return uuid.uuid5(OPERATOR_NAMESPACE, f"operator:{user.pk}")


def playground_project_id(user_id: uuid.UUID, sample: str) -> str:
    """The operator's own project for a sample: stable for them, not guessable by anyone else (keyed by the
    server's secret), and owned by them in the registry from its first session."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"playground:{user_id}:{sample}".encode(), hashlib.sha256)
    return f"playground-{sample}-{digest.hexdigest()[:24]}"


def sample_files(name: str) -> list[dict[str, str]]:
    """Every text file of a sample, as ``{"path", "content"}`` with paths relative to the project."""
    root = SAMPLES_DIR / name
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(root).parts):
            files.append({"path": path.relative_to(root).as_posix(), "content": path.read_text("utf-8")})
    return files


def realtime_socket_url() -> str:
    """The websocket URL of the realtime endpoint; empty means this server's own (the page adds its host)."""
    if settings.REALTIME_URL.startswith(settings.ORCHESTRATOR_URL):
        return ""
    return settings.REALTIME_URL.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/websocket"


def page_config(user: Any, sample: str) -> dict[str, Any]:
    user_id = operator_user_id(user)
    files = sample_files(sample)
    return {
        "token": issue_token(sub=user_id, role="authenticated", ttl=TOKEN_TTL),
        "user_id": str(user_id),
        "project_id": playground_project_id(user_id, sample),
        "api_url": "/api/v1/",
        "realtime_url": realtime_socket_url(),
        "files": files,
        "editable": _editable(sample, files),
    }


def _editable(sample: str, files: list[dict[str, str]]) -> str:
    wanted = "src/main.js" if sample == "vite" else "index.html"
    return wanted if any(f["path"] == wanted for f in files) else files[0]["path"]
