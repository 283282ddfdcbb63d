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
import shutil
import tempfile
from pathlib import Path

from bench import time_to_preview
from bench.results import percentile
from bench.stack import Stack


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_configs", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--creates", type=int, default=8)
    parser.add_argument("configs", nargs="*", default=["{}"], help="JSON objects of environment variables")
    return parser.parse_args(argv)


def measure(stack: Stack, creates: int, prefix: str) -> str:
    stack.stop_cluster()
    stack.stop_server()
    stack.start_server()
    stack.start_cluster()
    previews = []
    for index in range(creates):
        time_to_preview.wait_for_pool(stack)
        previews += time_to_preview.measure(stack, 1, f"{prefix}-{index}")
    seconds = [preview.seconds for preview in previews]
    boot = {f.name: f.value for f in time_to_preview.waterfall(previews, "warm")}["warm_agent_boot_median"]
    claim = "not measured" if boot is None else f"{boot:.3f} s"
    return f"p50 {percentile(seconds, 0.5):.3f} s, p95 {percentile(seconds, 0.95):.3f} s, claim to ready {claim}"


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    configs = [json.loads(config) for config in args.configs]
    root = Path(tempfile.mkdtemp(prefix="velocity-warm-configs-"))
    stack = Stack(root).prepare()
    try:
        import django

        django.setup()
        base_env = dict(stack.env)
        for number in range(1, args.rounds + 1):
            for index, config in enumerate(configs):
                stack.env = {**base_env, **config, "WARM_POOL_SIZE": "2"}
                result = measure(stack, args.creates, f"round{number}-config{index}")
                print(f"round {number} {json.dumps(config)}: {result}", flush=True)
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
