"""The warm path through the real API with a real local pool: a create claims a started warm machine inside the
request (no task queue), its real agent learns the project at once and serves it; a claim whose agent never
picks it up is handed back and provisioned again; two creates never get the same machine."""

import contextlib
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from django.db import connection
from django.test import override_settings
from django_q import tasks as django_q_tasks
from django_q.brokers import get_broker
from django_q.signing import SignedPackage
from rest_framework.test import APIClient

from machines import tasks as machine_tasks
from machines.models import Machine
from machines.services.pool import REFILL_TASK
from sessions import tasks
from sessions.models import PreviewSession
from sessions.services.provisioning import PROVISION_TASK
from sessions.testing import started
from velocity.auth import issue_token
from velocity.testing import require, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def warm_machine(local_machines: Path) -> Iterator[Machine]:
    """One started warm machine with its real agent waiting for an assignment (a pool of one)."""
    with override_settings(WARM_POOL_SIZE=1):
        assert machine_tasks.refill_warm_pool() == "warm pool of 1: created 1, destroyed 0"
        yield Machine.objects.get(is_warm=True, state="started")


@pytest.fixture(autouse=True)
def own_queue() -> Iterator[Any]:
    """Tasks go to a queue of this test's own: with Redis the cluster's queue is shared with anything else
    using that Redis (another test run's tasks are signed with another key and cannot even be read)."""
    broker = get_broker(list_key=f"velocity-test-{uuid.uuid4().hex}")
    with mock.patch("django_q.tasks.get_broker", return_value=broker):
        yield broker
    broker.delete_queue()


def queued_tasks() -> list[dict[str, Any]]:
    """Take every task waiting in this test's queue, as the cluster would."""
    broker, taken = django_q_tasks.get_broker(), []
    while batch := broker.dequeue():
        for task_id, package in batch:
            taken.append(SignedPackage.loads(package))
            broker.acknowledge(task_id)
    return taken


def task_name(task: dict[str, Any]) -> str:
    func = task["func"]
    return func if isinstance(func, str) else func.__name__


def arguments(task: dict[str, Any]) -> list[Any]:
    return [*task["args"], *task["kwargs"].values()]


def run(task: dict[str, Any]) -> Any:
    """Run one queued task here, as a cluster worker would."""
    func = task["func"]
    if isinstance(func, str):
        module, _, name = func.rpartition(".")
        func = getattr(__import__(module, fromlist=[name]), name)
    return func(*task["args"], **task["kwargs"])


def wait_for_status(session_id: str, status: str, timeout: float = 30) -> PreviewSession:
    def reached() -> PreviewSession | None:
        session = PreviewSession.objects.get(id=session_id)
        return session if session.status == status else None

    return wait_until(reached, timeout=timeout, interval=0.05, what=f"session {session_id} {status}")


def agent_pid(root: Path, machine: Machine) -> int:
    """The pid of the machine's ``preview_agent`` process (a child of its runner, in the runner's group)."""
    runner = int((root / "machines" / machine.provider_machine_id / "runner.pid").read_text())

    def found() -> int | None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    group = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
                    if group == runner and b"preview_agent" in (entry / "cmdline").read_bytes():
                        return int(entry.name)
                except (OSError, IndexError, ValueError):
                    continue
        return None

    return wait_until(found, timeout=10, what="the warm agent's process")


def test_a_create_claims_the_warm_machine_in_the_request_with_no_task_and_its_agent_serves_the_project(
    warm_machine: Machine, as_user: Callable[..., APIClient]
) -> None:
    queued_tasks()  # the pool's own refill
    response = as_user().post("/api/v1/sessions/", {"project_id": "warm-demo"}, format="json")
    body = response.json()
    assert response.status_code == 201
    assert body["machine_id"] == str(warm_machine.id)  # claimed before the answer
    assert body["status"] in ("active", "creating")  # `active` when the agent confirmed within WARM_CONFIRM_MS
    queued = [(task_name(task), list(task["args"])) for task in queued_tasks()]
    assert (REFILL_TASK, []) in queued  # the pool tops itself up again
    assert (PROVISION_TASK, [body["id"]]) not in queued  # and no provisioning task runs for this session
    assert tasks.provision_session(body["id"]) == f"session {body['id']}: nothing to provision"

    session = wait_for_status(body["id"], "active")
    assert session.machine_id == warm_machine.id
    assert session.machine_created_at == session.machine_started_at  # given a started machine
    assert httpx.get(session.preview_url, timeout=5).status_code == 404  # the agent serves the empty project
    assert httpx.get(f"{session.preview_url}health", timeout=5).json()["projectId"] == "warm-demo"
    warm_machine.refresh_from_db()
    assert (warm_machine.is_warm, warm_machine.assigned_at is not None) == (False, True)


def test_a_claim_whose_agent_never_picks_it_up_is_handed_back_and_the_session_still_becomes_active(
    warm_machine: Machine, local_machines: Path, as_user: Callable[..., APIClient]
) -> None:
    frozen = agent_pid(local_machines, warm_machine)
    os.kill(frozen, signal.SIGSTOP)  # the assignment (and its wake-up) reach a process that cannot read them
    try:
        body = as_user().post("/api/v1/sessions/", {"project_id": "lost"}, format="json").json()
        assert (body["status"], body["machine_id"]) == ("creating", str(warm_machine.id))
        queued_tasks()
        with override_settings(WARM_PICKUP_SECONDS=0):
            summary = tasks.agent_watch_round(holder="test", ttl=30, release=True)
        assert summary.endswith("1 warm claim(s) not picked up, provisioning again")
        mine = {str(warm_machine.id), body["id"]}
        handed_back = {task_name(task): task for task in queued_tasks() if mine & set(map(str, arguments(task)))}
        assert set(handed_back) == {PROVISION_TASK, "machine_destroy"}
        assert handed_back["machine_destroy"]["kwargs"]["machine_id"] == warm_machine.id
        assert list(handed_back[PROVISION_TASK]["args"]) == [body["id"]]
        for task in handed_back.values():
            run(task)  # the frozen machine is destroyed; the session gets a new machine (the pool is empty)
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone once the destroy took it
            os.kill(frozen, signal.SIGCONT)
    session = wait_for_status(body["id"], "active")
    assert session.machine_id not in (None, warm_machine.id)
    warm_machine.refresh_from_db()
    assert warm_machine.state == "destroyed"
    assert httpx.get(f"{session.preview_url}health", timeout=5).json()["projectId"] == "lost"


def test_two_creates_racing_for_one_warm_machine_never_share_it(local_machines: Path) -> None:
    require(connection.vendor == "postgresql", "the claim's SKIP LOCKED row lock needs PostgreSQL")
    machine = Machine.objects.create(provider="local", memory_mb=512, is_warm=True)
    started(machine)
    barrier, answers = threading.Barrier(2), []

    def create(project: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(sub=uuid.uuid4(), role='authenticated')}")
        try:
            barrier.wait()
            answers.append(client.post("/api/v1/sessions/", {"project_id": project}, format="json").json())
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(f"race-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(str(answer["machine_id"]) for answer in answers) == sorted([str(machine.id), "None"])
    ids = {answer["id"] for answer in answers}
    provisioned = [task["args"][0] for task in queued_tasks() if task_name(task) == PROVISION_TASK]
    assert [session_id for session_id in provisioned if session_id in ids] == [
        next(answer["id"] for answer in answers if answer["machine_id"] is None)
    ]


def test_a_create_that_finds_the_pool_empty_is_provisioned_cold_and_asks_the_pool_to_grow(
    as_user: Callable[..., APIClient],
) -> None:
    queued_tasks()
    with override_settings(WARM_POOL_MIN=0, WARM_POOL_MAX=3):  # an auto-sized pool that is empty now
        body = as_user().post("/api/v1/sessions/", {"project_id": "pool-miss"}, format="json").json()
    assert (body["status"], body["machine_id"]) == ("creating", None)
    mine = [(task_name(task), list(task["args"])) for task in queued_tasks()]
    assert mine.index((PROVISION_TASK, [body["id"]])) < mine.index((REFILL_TASK, []))  # its own machine first
