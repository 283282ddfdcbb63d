"""``python -m bench.warm_configs [--rounds N] [--creates K] CONFIG...``: warm time to preview for several
configurations of the orchestrator, alternated on one stack.

Each CONFIG is a JSON object of environment variables for the stack's server and cluster (``'{}'`` is the default,
``'{"WEB_DATABASE_POOL": "false"}'`` another). A round restarts the server and the cluster once per configuration
with a warm pool of two and makes K warm creates as ``bench.time_to_preview`` does (each with a started warm
machine waiting); rounds alternate, so a slow minute of the shared machine falls on every configuration alike.
"""

from __future__ import annotations

import argparse
import json

from bench import time_to_preview
from bench.alternate import alternate
from bench.results import percentile
from bench.stack import Stack


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_configs", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--creates", type=int, default=8)
    parser.add_argument("configs", nargs="*", default=["{}"], help="JSON objects of environment variables")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)

    def one(stack: Stack, number: int, index: int, context: object) -> str:
        previews = time_to_preview.warm_previews(stack, args.creates, f"round{number}-config{index}")
        seconds = [preview.seconds for preview in previews]
        figures = {f.name: f.value for f in time_to_preview.waterfall(previews, "warm")}
        boot = figures["warm_agent_boot_median"]
        claim = "not measured" if boot is None else f"{boot:.3f} s"
        return f"p50 {percentile(seconds, 0.5):.3f} s, p95 {percentile(seconds, 0.95):.3f} s, claim to ready {claim}"

    alternate([json.loads(config) for config in args.configs], args.rounds, one)


if __name__ == "__main__":
    main()
