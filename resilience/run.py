"""``python -m resilience [--fast] [--only NAME,...] [--json PATH]``: break the system on purpose.

One orchestrator is started in a temp var dir (as ``bench`` does); each scenario prints what it did and
what it found, and a breach fails the run. ``--fast`` runs the scenarios that take seconds (they also
run under ``make test``); scenarios that need a piece not merged yet are reported as not run, with why.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.stack import Stack
from resilience import (
    attacks_agent,
    attacks_frames,
    attacks_html,
    attacks_ids,
    attacks_tenants,
    attacks_tokens,
    crashes,
    faults,
    quota_race,
    realtime_drop,
    redis_restart,
)
from resilience.context import Context
from resilience.report import NotRun, Outcome, summary_table, write_json

Scenario = Callable[[Context, Outcome], None]
FAST: dict[str, Scenario] = {
    "attack_tokens": attacks_tokens.run,
    "attack_foreign_ids": attacks_ids.run,
    "attack_frames": attacks_frames.run,
    "attack_agent_paths": attacks_agent.run,
    "attack_markup_in_project_ids": attacks_html.run,
    "attack_tenants": attacks_tenants.run,
}
SLOW: dict[str, Scenario] = {
    "fly_fault_burst": faults.run,
    "quota_race": quota_race.run,
    "agent_killed": crashes.agent_killed,
    "sigkill_mid_provisioning": crashes.sigkill_mid_provisioning,
    "realtime_dropped_mid_edits": realtime_drop.run,
    "redis_restart": redis_restart.run,
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m resilience", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="only the scenarios that take seconds")
    parser.add_argument("--only", default="", help="comma-separated: " + ", ".join([*FAST, *SLOW]))
    parser.add_argument("--json", type=Path, default=None, help="also write the outcomes here")
    return parser.parse_args(argv)


def run_one(name: str, scenario: Scenario, ctx: Context) -> Outcome:
    out, began = Outcome(name), time.monotonic()
    print(f"\n== {name}", flush=True)
    try:
        scenario(ctx, out)
    except NotRun as reason:
        out.status = "not run"
        out.saw(f"not run: {reason}")
    except Exception as error:
        traceback.print_exc()
        out.status = "error"
        out.breach(f"the scenario itself failed: {type(error).__name__}: {error}")
    out.finish()
    out.seconds = time.monotonic() - began
    print(f"== {name}: {out.status} ({out.seconds:.1f} s)", flush=True)
    return out


def selected(args: argparse.Namespace) -> dict[str, Scenario]:
    every = {**FAST, **SLOW}
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = set(names) - set(every)
        if unknown:
            sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        return {n: every[n] for n in names}
    return dict(FAST) if args.fast else every


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    scenarios = selected(args)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="velocity-resilience-") as root:
        stack = Stack(Path(root), VELOCITY_ADMIN_PASSWORD=attacks_html.OPERATOR_PASSWORD, PROVISION_TIMEOUT="20")
        try:
            stack.prepare()
            import django

            django.setup()
            stack.start_server()
            outcomes = [run_one(name, scenario, Context(stack)) for name, scenario in scenarios.items()]
        finally:
            leaked = stack.stop()
    print("\n" + summary_table(outcomes))
    if leaked:
        print(f"resilience: {len(leaked)} process(es) outlived the run and were killed: {leaked}")
    if args.json:
        write_json(outcomes, args.json)
    failed = [o.name for o in outcomes if o.status in ("failed", "error")]
    print(
        f"resilience: {len(outcomes) - len(failed)} of {len(outcomes)} without breaches"
        + (f"; failed: {failed}" if failed else "")
    )
    return 1 if failed or leaked else 0
