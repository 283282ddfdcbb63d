"""The web process freezes what it loaded at startup out of the garbage collector; other imports do not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from velocity.run import child_environment
from velocity.testing import REPO_ROOT, embedded_env

PROBE = "import velocity.asgi, gc; print(gc.get_freeze_count())"


def frozen_after_import(tmp_path: Path, **env: str) -> int:
    argv = [sys.executable, "-c", PROBE]
    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=embedded_env(tmp_path, **env), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


@pytest.mark.slow
def test_the_asgi_module_freezes_its_startup_objects_only_when_asked(tmp_path: Path) -> None:
    assert frozen_after_import(tmp_path, WEB_GC_FREEZE="true") > 100_000  # Django, DRF, Channels and the app
    assert frozen_after_import(tmp_path, WEB_GC_FREEZE="false") == 0


def test_velocity_run_asks_its_children_to_freeze_unless_told_otherwise() -> None:
    assert child_environment({"PATH": "/bin"}) == {"PATH": "/bin", "WEB_GC_FREEZE": "true"}
    assert child_environment({"WEB_GC_FREEZE": "false"})["WEB_GC_FREEZE"] == "false"
    assert child_environment({}, web=True)["WEB_DATABASE_POOL"] == "true"  # a daphne's, not the cluster's
    assert child_environment({"WEB_DATABASE_POOL": "false"}, web=True)["WEB_DATABASE_POOL"] == "false"
