"""``python -m bench.profile_api [--reference] [--seconds N]``: where a list request's time goes under load.

Starts a fresh stack and ``velocity.run web`` as ``bench.api`` does, loads the list (or the reference view)
with 16 concurrent clients, samples one daphne with ``py-spy record --threads`` (requirements-dev.txt) and
prints the share of samples by where they are: the table in docs/benchmarks.md, *REST under load*.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from bench import api
from bench.stack import Stack

# First match wins, in this order: a sample inside a throttle is the throttle's even though Django called it.
PLACES = (
    ("DRF throttles (Redis round trips)", ("throttling.py",)),
    ("token verification", ("sessions/authentication.py", "velocity/auth.py", "jwt/")),
    ("the rows' JSON", ("session_json.py", "rest_framework/serializers.py", "rest_framework/fields.py")),
    ("rendering", ("renderers.py", "json/encoder")),
    ("database", ("django/db/",)),
    ("Django, DRF, middleware", ("django/", "rest_framework/", "corsheaders", "whitenoise", "velocity/", "sessions/")),
    ("ASGI hand-offs, daphne, Twisted", ("daphne", "twisted", "asyncio", "asgiref", "concurrent/futures", "threading")),
)


def py_spy() -> str:
    """py-spy beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: pip install -r requirements-dev.txt")
    return found


def place(stack: str) -> str:
    return next((name for name, marks in PLACES if any(mark in stack for mark in marks)), "other")


def shares(raw: Path) -> list[tuple[str, float]]:
    """Share of samples per place, from py-spy's ``raw`` output (``frame;frame;... count`` lines)."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        counts[place(stack)] += int(count)
    total = sum(counts.values()) or 1
    return [(name, counts[name] / total) for name in [*(n for n, _ in PLACES), "other"] if counts[name]]


def profile(
    stack: Stack, *, reference: bool, seconds: float, output: Path, gil: bool = False
) -> tuple[float, float, float]:
    owner = uuid.uuid4()
    api.seed_sessions(owner)
    headers = api.user_headers(owner)
    with api.production_web(stack) as (base, process):
        servers = api.children_of(process.pid)
        url = f"{base}/{api.REFERENCE_PATH}?user_id={owner}" if reference else f"{base}/api/v1/sessions/"
        argv = [py_spy(), "record", "-p", str(servers[0]), "-o", str(output), "-f", "raw", "--threads"]
        argv += ["--gil"] if gil else []
        spy = subprocess.Popen([*argv, "-r", "100", "-d", str(int(seconds) + 2)], stderr=subprocess.DEVNULL)  # noqa: S603
        time.sleep(0.5)
        figures = api.loaded(url, headers, seconds, servers)
        spy.wait(timeout=seconds + 30)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_api", description=__doc__)
    parser.add_argument("--reference", action="store_true", help="profile the bare values() view instead")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL (Python's CPU)")
    parser.add_argument("--keep", type=Path, help="copy py-spy's raw samples here (one stack per line)")
    args = parser.parse_args()
    py_spy()
    root = Path(tempfile.mkdtemp(prefix="velocity-profile-"))
    stack = Stack(root).prepare()
    try:
        import django

        django.setup()
        rps, p99, cpu = profile(
            stack, reference=args.reference, seconds=args.seconds, output=root / "profile.raw", gil=args.gil
        )
        print(f"{rps:.1f} requests/s, p99 {p99:.0f} ms, server CPU {cpu:.1f} ms per request")
        for name, share in shares(root / "profile.raw"):
            print(f"{share * 100:5.1f} %  {name}")
        if args.keep:
            shutil.copy(root / "profile.raw", args.keep)
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
