"""A warm claim whose agent never reported is handed back (its machine destroyed, the session queued for another);
a claim whose agent reported, one still within ``WARM_PICKUP_SECONDS``, and a new machine are left alone."""

import uuid
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from machines.tests.factories import machine_with_history
from sessions.models import AgentHeartbeat, PreviewSession
from sessions.services import session_create, session_reprovision_undelivered
from sessions.services.provisioning import PROVISION_TASK
from velocity.auth import user_claims

pytestmark = pytest.mark.django_db

PICKUP = 10


def warm_claimed(project: str) -> PreviewSession:
    """A session that claimed a started warm machine in its create."""
    at = timezone.now() - timedelta(minutes=1)
    machine_with_history([("created", at), ("started", at)], is_warm=True)
    user = uuid.uuid4()
    session, _ = session_create(claims=user_claims(user), user_id=user, project_id=project, memory_mb=512, now=at)
    assert session.machine_id is not None
    return session


def hand_back(now: Any, captured: Any) -> tuple[int, list[Any]]:
    """Run one hand-back round; (how many, the (func, args, kwargs) it queued on commit)."""
    with mock.patch("sessions.services.provisioning.async_task") as enqueue, captured(execute=True):
        handed = session_reprovision_undelivered(now=now, timeout=PICKUP)
    return handed, [(call.args[0], call.args[1:], call.kwargs) for call in enqueue.call_args_list]


def test_a_claim_never_picked_up_is_handed_back_and_queued_again(django_capture_on_commit_callbacks: Any) -> None:
    session = warm_claimed("silent")
    machine_id = session.machine_id
    assert session.machine_started_at is not None
    handed, enqueued = hand_back(
        session.machine_started_at + timedelta(seconds=PICKUP + 1), django_capture_on_commit_callbacks
    )
    session.refresh_from_db()
    assert handed == 1
    assert (session.status, session.machine_id, session.machine_started_at) == ("creating", None, None)
    (destroy, _, destroy_kwargs), (provision, provision_args, _) = enqueued
    assert (destroy.__name__, destroy_kwargs["machine_id"]) == ("machine_destroy", machine_id)
    assert (provision, provision_args) == (PROVISION_TASK, (str(session.id),))


def test_a_reported_claim_a_recent_one_and_a_new_machine_are_left_alone(
    django_capture_on_commit_callbacks: Any,
) -> None:
    reported, recent = warm_claimed("reported"), warm_claimed("recent")
    AgentHeartbeat.objects.create(session=reported, seen_at=timezone.now())
    cold = warm_claimed("cold")
    assert cold.machine_started_at is not None and recent.machine_started_at is not None
    PreviewSession.objects.filter(id=cold.id).update(machine_created_at=cold.machine_started_at - timedelta(seconds=1))
    handed, enqueued = hand_back(
        recent.machine_started_at + timedelta(seconds=PICKUP - 1), django_capture_on_commit_callbacks
    )
    assert (handed, enqueued) == (0, [])
    later = recent.machine_started_at + timedelta(seconds=PICKUP + 1)
    handed, _ = hand_back(later, django_capture_on_commit_callbacks)
    assert handed == 1  # only the recent one, once its time is up
    assert PreviewSession.objects.filter(machine__isnull=False).count() == 2
