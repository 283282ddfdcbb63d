"""The warm pool: claims never hand one machine to two sessions; refills keep the pool at its size."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from machines.models import Machine
from machines.services import machine_claim_warm, machine_pool_refill
from machines.tests.factories import machine_with_history
from velocity.testing import require


def warm_machines(count: int, *, state: str = "started", memory_mb: int = 512) -> list[Machine]:
    at = timezone.now() - timedelta(minutes=1)
    return [
        machine_with_history([("created", at), (state, at)], is_warm=True, memory_mb=memory_mb) for _ in range(count)
    ]


def claim(memory_mb: int = 512) -> Machine | None:
    with transaction.atomic():
        return machine_claim_warm(memory_mb=memory_mb, session_id=str(uuid.uuid4()), now=timezone.now())


@pytest.mark.django_db
def test_a_claim_takes_the_oldest_started_machine_of_the_right_size_once() -> None:
    warm_machines(1, state="starting")
    warm_machines(1, memory_mb=1024)
    [ready] = warm_machines(1)
    claimed = claim()
    assert claimed is not None and claimed.id == ready.id
    ready.refresh_from_db()
    assert (ready.is_warm, ready.assigned_at is not None) == (False, True)
    assert ready.events.filter(detail__has_key="claimed_by_session").count() == 1
    assert claim() is None  # the booting one and the larger one are not offered


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_on_postgresql_never_get_the_same_machine() -> None:
    require(
        connection.vendor == "postgresql",
        "row locks with SKIP LOCKED need PostgreSQL; SQLite serializes every write anyway",
    )
    warm_machines(4)
    results: list[uuid.UUID | None] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        try:
            barrier.wait()
            machine = claim()
            results.append(machine.id if machine else None)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    won = [machine_id for machine_id in results if machine_id is not None]
    assert len(results) == 8
    assert len(won) == 4 and len(set(won)) == 4
    assert not Machine.objects.filter(is_warm=True).exists()


@pytest.mark.django_db
def test_refilling_creates_what_is_missing_and_shrinking_destroys_the_oldest(fly_api: object) -> None:
    with override_settings(FLY_REGION="iad"):
        assert machine_pool_refill(size=2, memory_mb=512) == (2, 0)
        assert machine_pool_refill(size=2, memory_mb=512) == (0, 0)
        oldest = Machine.objects.filter(is_warm=True).order_by("created_at").first()
        assert machine_pool_refill(size=1, memory_mb=512) == (0, 1)
    assert oldest is not None
    oldest.refresh_from_db()
    assert oldest.state == "destroyed"
    assert Machine.objects.filter(is_warm=True, state="started").count() == 1
