"""The task cluster's heartbeat (written from django-q2's status hook) and the queue's backlog."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import time_machine
from django_q.conf import Conf
from django_q.signing import SignedPackage

from velocity import task_queue
from velocity.models import WorkerHeartbeat
from velocity.testing import require

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def stat(status: str = "Idle", workers: int = 2, cluster_id: uuid.UUID | None = None) -> str:
    """What the sentinel hands ``set_stat``: its signed status (a plain object standing in for ``Stat``)."""
    cluster = cluster_id or uuid.UUID(int=1)
    fields = {"cluster_id": cluster, "host": "w1", "pid": 42, "workers": [1] * workers, "status": status, "tob": NOW}
    return SignedPackage.dumps(SimpleNamespace(**fields))


def beat(status: str, age: float) -> WorkerHeartbeat:
    at = NOW - timedelta(seconds=age)
    return WorkerHeartbeat(cluster_id=status, host="h", pid=1, workers=2, status=status, started_at=at, beat_at=at)


@pytest.mark.django_db
def test_the_brokers_status_hook_writes_the_heartbeat_other_processes_read() -> None:
    broker = task_queue.HeartbeatORM()
    with time_machine.travel(NOW, tick=False):
        broker.set_stat("django_q:velocity:cluster:1", stat(), 3)
    row = WorkerHeartbeat.objects.get()
    assert (row.cluster_id, row.host, row.pid, row.workers, row.status, row.beat_at) == (
        str(uuid.UUID(int=1)),
        "w1",
        42,
        2,
        "Idle",
        NOW,
    )


@pytest.mark.django_db
def test_the_heartbeat_is_written_every_few_seconds_and_at_once_when_the_status_changes() -> None:
    broker = task_queue.HeartbeatORM()
    with time_machine.travel(NOW, tick=False):
        broker.set_stat("k", stat("Idle"), 3)
    with time_machine.travel(NOW + timedelta(seconds=1), tick=False):
        broker.set_stat("k", stat("Idle"), 3)  # within BEAT_EVERY, same status: no write
        assert WorkerHeartbeat.objects.get().beat_at == NOW
        broker.set_stat("k", stat("Stopped"), 3)
    assert WorkerHeartbeat.objects.get().status == "Stopped"


@pytest.mark.django_db
def test_a_broken_status_never_breaks_the_guard_loop() -> None:
    task_queue.HeartbeatORM().set_stat("k", "not a signed package", 3)
    assert not WorkerHeartbeat.objects.exists()


def test_a_cluster_is_alive_while_its_heartbeat_is_fresh_and_it_has_not_stopped() -> None:
    health = task_queue.cluster_health([beat("Idle", 3), beat("Stopped", 1)], now=NOW, stale_after=15)
    assert (health.alive, health.clusters, health.workers, health.heartbeat_age, health.status) == (
        True,
        1,
        2,
        1.0,
        "Stopped",
    )


def test_a_silent_cluster_is_down_and_says_how_long_it_has_been_silent() -> None:
    health = task_queue.cluster_health([beat("Working", 40)], now=NOW, stale_after=15)
    assert (health.alive, health.workers, health.heartbeat_age, health.status) == (False, 0, 40.0, "Working")


def test_no_heartbeat_at_all_is_down_with_no_age() -> None:
    health = task_queue.cluster_health([], now=NOW, stale_after=15)
    assert (health.alive, health.heartbeat_age, health.last_beat_at, health.status) == (False, None, None, "none")


@pytest.mark.django_db
def test_the_queue_reports_waiting_tasks_the_oldest_and_recent_failures(
    django_q_failure: Any, isolated_task_queue: Any
) -> None:
    broker = isolated_task_queue
    with time_machine.travel(NOW, tick=False):
        for minutes in (3, 1):
            broker.enqueue(SignedPackage.dumps({"id": str(minutes), "started": NOW - timedelta(minutes=minutes)}))
        queue = task_queue.queue_health()
    assert (queue.queued, queue.oldest_age, queue.failures_last_hour) == (2, 180.0, 1)


@pytest.fixture
def django_q_failure() -> Any:
    """One task that failed 10 minutes before ``NOW`` and one a day earlier."""
    from django_q.models import Task

    for stopped in (NOW - timedelta(minutes=10), NOW - timedelta(days=1)):
        Task.objects.create(
            id=uuid.uuid4().hex,
            name=str(stopped),
            func="math.floor",
            started=stopped,
            stopped=stopped,
            success=False,
        )


@pytest.mark.django_db
def test_prometheus_reports_a_stopped_worker_and_the_backlog(isolated_task_queue: Any) -> None:
    from prometheus_client import generate_latest

    from velocity.metrics_exporter import scrape_registry
    from velocity.testing import cluster_beat

    cluster_beat(age=60)
    isolated_task_queue.enqueue(
        SignedPackage.dumps({"id": "t", "started": datetime.now(tz=UTC) - timedelta(minutes=2)})
    )
    lines = generate_latest(scrape_registry()).decode().splitlines()
    assert "velocity_worker_up 0.0" in lines and "velocity_task_queue_depth 1.0" in lines
    (oldest,) = [line for line in lines if line.startswith("velocity_task_queue_oldest_seconds ")]
    assert float(oldest.split()[1]) >= 120


def test_the_redis_brokers_of_one_process_share_one_client_and_its_connections() -> None:
    """Every ``async_task`` makes a broker; each used to make a client and open a Redis connection."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    with mock.patch.object(Conf, "REDIS", url):
        brokers = [task_queue.HeartbeatRedis(list_key=f"velocity-test-{uuid.uuid4().hex}") for _ in range(3)]
        assert len({id(broker.connection) for broker in brokers}) == 1
        require(_answers(brokers[0]), "needs Redis")
        for broker in brokers:
            broker.enqueue("package")
        assert [broker.queue_size() for broker in brokers] == [1, 1, 1]  # a list key each, one client for all
        for broker in brokers:
            broker.delete_queue()


def _answers(broker: task_queue.HeartbeatRedis) -> bool:
    try:
        return bool(broker.connection.ping())
    except Exception:
        return False
