"""``python -m bench [--quick] [--only GROUP,...]``: start a fresh orchestrator, measure, write the table.

The groups run in one stack, in an order where each leaves the next a clean system: previews (cold),
edits, memory, fan-out, REST with 10,000 sessions, the expiry sweep over 100,000, then the warm pool
(which restarts the stack with a pool). Every process started is stopped, and a leak fails the run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import api, edit_to_ack, fanout, pool_burst, rss, seed, sweep, time_to_preview
from bench.results import Figure, Results, calibration_ms, not_measured
from bench.stack import Stack

Runner = Callable[[Stack, Results], None]


def groups(quick: bool) -> dict[str, Runner]:
    return {
        "time_to_preview": lambda s, r: time_to_preview.run_cold(s, r, quick=quick),
        "edit_to_ack": lambda s, r: edit_to_ack.run(s, r, quick=quick),
        "rss": lambda s, r: rss.run(s, r, quick=quick),
        "fanout": lambda s, r: fanout.run(s, r, quick=quick),
        "api": lambda s, r: api.run(s, r, quick=quick),
        "sweep": lambda s, r: sweep.run(s, r, quick=quick),
        "warm_pool": lambda s, r: time_to_preview.run_warm(s, r, quick=quick),
        "pool_burst": lambda s, r: pool_burst.run(s, r, quick=quick),
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts and shorter runs (under 2 minutes)")
    parser.add_argument("--only", default="", help="comma-separated groups: " + ", ".join(groups(False)))
    parser.add_argument("--output", type=Path, default=None, help="directory for latest.json and latest.md")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server and cluster logs) afterwards")
    return parser.parse_args(argv)


def run_groups(stack: Stack, results: Results, selected: dict[str, Runner]) -> None:
    for name, runner in selected.items():
        began = time.monotonic()
        print(f"bench: {name} ...", flush=True)
        try:
            runner(stack, results)
        except Exception as error:
            traceback.print_exc()
            results.meta.setdefault("errors", {})[name] = f"{type(error).__name__}: {error}"
            results.add(not_measured(name, "error", "", f"{type(error).__name__}: {error}"))
        results.meta.setdefault("group_seconds", {})[name] = round(time.monotonic() - began, 1)
        print(f"bench: {name} done in {time.monotonic() - began:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    every = groups(args.quick)
    wanted = [g.strip() for g in args.only.split(",") if g.strip()] or list(every)
    unknown = set(wanted) - set(every)
    if unknown:
        sys.exit(f"unknown group(s): {', '.join(sorted(unknown))}")
    results = Results(mode="quick" if args.quick else "full")
    results.meta["calibration_ms_start"] = calibration_ms()
    root = Path(tempfile.mkdtemp(prefix="velocity-bench-"))
    try:
        leaked = measure(root, results, {name: every[name] for name in wanted})
    finally:
        if args.keep:
            print(f"bench: kept {root} (logs in {root / 'logs'})")
        else:
            shutil.rmtree(root, ignore_errors=True)
    results.meta["leaked_processes"] = leaked
    results.meta["calibration_ms_end"] = calibration_ms()
    results.add(*seed.figures(results))
    json_path, md_path = results.write(args.output) if args.output else results.write()
    print(md_path.read_text())
    print(f"bench: wrote {json_path} and {md_path}")
    if leaked:
        print(f"bench: {len(leaked)} process(es) outlived the run and were killed: {leaked}", file=sys.stderr)
    return 1 if leaked or results.meta.get("errors") else 0


def measure(root: Path, results: Results, selected: dict[str, Runner]) -> list[int]:
    stack = Stack(root)
    try:
        stack.prepare()
        import django

        django.setup()
        stack.start_server()
        stack.start_cluster()
        run_groups(stack, results, selected)
    finally:
        leaked = stack.stop()
    results.meta["settings"] = {
        "throttles": "THROTTLE_* lifted to 1000000/min",
        "REALTIME_LIMITS_PROFILE": "unlimited, supabase for edit_to_ack",
        "Q_WORKERS": os.environ.get("Q_WORKERS", "2"),
    }
    return leaked


__all__ = ["Figure", "main"]
