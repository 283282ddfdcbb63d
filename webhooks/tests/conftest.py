from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.test import override_settings
from django_q.conf import Conf
from rest_framework.test import APIClient

from velocity.audit import audited
from velocity.auth import issue_token
from webhooks import services
from webhooks.models import WebhookEndpoint
from webhooks.testing import Receiver, receiver_process


@pytest.fixture(autouse=True)
def private_addresses_allowed() -> Iterator[None]:
    """The receivers listen on 127.0.0.1: allowed here, refused by the SSRF tests that say so."""
    with override_settings(WEBHOOKS_ALLOW_PRIVATE=True):
        yield


@pytest.fixture
def start_receiver(tmp_path: Path) -> Iterator[Callable[[str], Receiver]]:
    """Start a receiver process answering ``plan`` (e.g. ``"500,200"``); all stop after the test."""
    numbers = itertools.count()
    with ExitStack() as stack:

        def start(plan: str) -> Receiver:
            folder = tmp_path / f"receiver-{next(numbers)}"
            folder.mkdir()
            return stack.enter_context(receiver_process(folder, plan=plan))

        yield start


@pytest.fixture
def receiver(start_receiver: Callable[[str], Receiver]) -> Receiver:
    """A receiver that answers 200."""
    return start_receiver("200")


@pytest.fixture
def endpoint(receiver: Receiver) -> WebhookEndpoint:
    """An endpoint at the receiver for every event type, registered by the service role; the receiver knows
    its secret."""
    created = services.endpoint_create(url=receiver.url, event_types=[], actor=None, actor_label="service_role")
    receiver.secrets(created.secret)
    return created


@contextmanager
def cluster_in_process() -> Iterator[None]:
    """django-q2 runs what is enqueued at once, in this process, as a cluster worker would."""
    with mock.patch.object(Conf, "SYNC", True):
        yield


@pytest.fixture
def delivered(django_capture_on_commit_callbacks: Callable[..., Any]) -> Callable[[], Any]:
    """A context that runs the commit callbacks (the events, then the enqueued deliveries) with the queue in
    process."""

    @contextmanager
    def run() -> Iterator[None]:
        with cluster_in_process(), django_capture_on_commit_callbacks(execute=True):
            yield

    return run


@pytest.fixture
def as_service() -> APIClient:
    """An API client with the service role's token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(sub=None, role='service_role')}")
    return client


@pytest.fixture
def as_stranger() -> APIClient:
    """An API client with an ordinary user's token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(sub=uuid.uuid4())}")
    return client


@pytest.fixture
def audits() -> Iterator[list[dict[str, Any]]]:
    """What went through the audit door (``velocity.audit``) during the test, in order (the records are the
    dashboard's, a layer above)."""
    sent: list[dict[str, Any]] = []

    def knock(sender: Any, *, signal: Any, **record: Any) -> None:
        sent.append(record)

    audited.connect(knock, weak=False, dispatch_uid="webhooks-test-audits")
    yield sent
    audited.disconnect(dispatch_uid="webhooks-test-audits")
