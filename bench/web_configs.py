"""``python -m bench.web_configs [--rounds N] [--seconds S] CONFIG...``: the list under load for several web
configurations, alternated on one seeded stack.

Each CONFIG is a JSON object of environment variables for ``velocity.run web`` (``'{}'`` is the default,
``'{"WEB_THREADS": "4"}'`` another). A round starts the web once per configuration and loads our list and the
reference view as ``bench.api`` does; rounds alternate, so a slow minute of the shared machine falls on every
configuration alike. How ``WEB_THREADS`` and ``WEB_GC_FREEZE`` got their defaults (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import uuid

from bench import api
from bench.alternate import alternate
from bench.stack import Stack


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.web_configs", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("configs", nargs="*", default=["{}"], help="JSON objects of environment variables")
    return parser.parse_args(argv)


def measure(stack: Stack, owner: uuid.UUID, seconds: float) -> str:
    headers = api.user_headers(owner)
    with api.production_web(stack) as (base, process):
        servers = api.children_of(process.pid)
        rps, p99, cpu, spread = api.loaded_spread(f"{base}/api/v1/sessions/", headers, seconds, servers)
        ref_rps, ref_p99, ref_cpu = api.loaded(f"{base}/{api.REFERENCE_PATH}?user_id={owner}", {}, seconds, servers)
    cores = ", ".join(f"{each:.1f}" for each in spread)
    return (
        f"ours {rps:.0f} requests/s, p99 {p99:.0f} ms, {cpu:.2f} ms CPU each (CPU s per process: {cores}) | "
        f"reference {ref_rps:.0f} requests/s, p99 {ref_p99:.0f} ms, {ref_cpu:.2f} ms CPU each"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)

    def seed(stack: Stack) -> uuid.UUID:
        owner = uuid.uuid4()
        api.seed_sessions(owner)
        return owner

    def one(stack: Stack, number: int, index: int, owner: uuid.UUID) -> str:
        return measure(stack, owner, args.seconds)

    alternate([json.loads(config) for config in args.configs], args.rounds, one, setup=seed)


if __name__ == "__main__":
    main()
