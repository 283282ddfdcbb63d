"""The official JavaScript client (``clients/js``): its Node tests, run with ``node --test``.

They start their own orchestrator (``clients/js/test/server.js``: a temp var dir, ``manage.py migrate``,
``python -m velocity.run`` on a free port, tokens from ``manage.py issue_token``) with this interpreter,
and cover the whole flow, a dropped socket, a page-reload reconnect and a quota refusal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from velocity.testing import REPO_ROOT, require

pytestmark = pytest.mark.slow

CLIENT_DIR = REPO_ROOT / "clients" / "js"
NODE = shutil.which("node")


def ensure_installed() -> None:
    """``npm ci`` from the committed lockfile when ``make test`` has not done it."""
    if not (CLIENT_DIR / "node_modules" / "@supabase" / "supabase-js").is_dir():
        npm = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run(npm, check=True, cwd=CLIENT_DIR, timeout=300)


def test_the_js_client_against_a_real_server() -> None:
    require(NODE, "node is not installed")
    ensure_installed()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env["VELOCITY_PYTHON"] = sys.executable
    tests = sorted(str(path.relative_to(CLIENT_DIR)) for path in (CLIENT_DIR / "test").glob("*.test.js"))
    done = subprocess.run(
        [str(NODE), "--test", "--test-reporter=tap", *tests],
        cwd=CLIENT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, (
        f"node --test failed ({done.returncode}):\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    )
