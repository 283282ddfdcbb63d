"""``python -m bench.create_rtt [--rtt-ms MS] [--creates N]``: session creates with PostgreSQL made distant.

Production's database (Supabase's) is across a network, where every statement of a create is a round trip;
PostgreSQL here is on the same host, where they are nearly free (``create_p50`` of ``make bench`` hardly moves
with their number). This starts a stack's fresh database, puts a TCP relay (the agent tests' ``Relay``) in
front of it that holds each chunk of traffic for half of ``--rtt-ms`` each way, and times
``sessions.services.session_create`` in this process (no web server, no pool of warm machines, so the cold
path's create), twice: each create by a new user for a new project (the project is registered), and creates by
one user of their own project (each ended before the next). It prints the median time, the median number of
statements and the relay's measured round trip
(a ``SELECT 1``). Needs ``DATABASE_URL`` (PostgreSQL).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.stack import Stack

SELECT_ONE_SAMPLES = 50


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.create_rtt", description=__doc__)
    parser.add_argument("--rtt-ms", type=float, default=1.0, help="added round trip to PostgreSQL (default 1)")
    parser.add_argument("--creates", type=int, default=40, help="creates of each kind (default 40)")
    return parser.parse_args(argv)


def through_relay(database_url: str, delay: float) -> str:
    """``database_url`` through a relay that holds each chunk ``delay`` seconds each way."""
    from preview_agent.tests.realtime_helpers import Relay

    url = urlsplit(database_url)
    relay = Relay(url.port or 5432, target_host=url.hostname or "127.0.0.1", delay=delay)
    credentials = url.netloc.rpartition("@")[0]
    netloc = f"127.0.0.1:{relay.port}"
    return urlunsplit(url._replace(netloc=f"{credentials}@{netloc}" if credentials else netloc))


def select_one_ms() -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        began = time.perf_counter()
        for _ in range(SELECT_ONE_SAMPLES):
            cursor.execute("SELECT 1")
        return (time.perf_counter() - began) * 1000 / SELECT_ONE_SAMPLES


def timed_create(user: uuid.UUID, project_id: str) -> tuple[float, int]:
    """One create (then its end, untimed): its milliseconds and statements."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from sessions import services
    from velocity.auth import user_claims

    began = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        session, _ = services.session_create(
            claims=user_claims(user), user_id=user, project_id=project_id, memory_mb=512, now=timezone.now()
        )
    spent = (time.perf_counter() - began) * 1000
    services.session_end(session=session, reason="user", now=timezone.now())
    return spent, len(queries.captured_queries)


def creates(count: int, make: Callable[[int], tuple[uuid.UUID, str]]) -> str:
    samples = [timed_create(*make(index)) for index in range(count)]
    spent = statistics.median(ms for ms, _ in samples)
    return f"p50 {spent:.1f} ms, {statistics.median(n for _, n in samples):.0f} statements"


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    root = Path(tempfile.mkdtemp(prefix="velocity-create-rtt-"))
    stack = Stack(root).prepare()
    try:
        os.environ["DATABASE_URL"] = through_relay(os.environ["DATABASE_URL"], args.rtt_ms / 2000)
        os.environ.pop("WEB_DATABASE_POOL", None)
        import django

        django.setup()
        print(f"relay: SELECT 1 takes {select_one_ms():.2f} ms (asked for {args.rtt_ms} ms more)", flush=True)
        print(f"new user, new project: {creates(args.creates, lambda i: (uuid.uuid4(), f'rtt-{i}'))}", flush=True)
        owner = uuid.uuid4()
        print(f"one user, own project: {creates(args.creates, lambda i: (owner, 'rtt-own'))}", flush=True)
    finally:
        from django.db import connections

        connections.close_all()
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
