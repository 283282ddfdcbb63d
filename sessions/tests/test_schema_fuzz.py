"""schemathesis over our own OpenAPI schema, in process: no generated request may cause a server error, and
every answer must be one the schema lists, with its content type, headers and body shape."""

import uuid
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from velocity.auth import issue_token

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
USER = uuid.uuid4()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def _in_process_requests() -> Iterator[None]:
    """As Django's test client does: keep the test's connection open across in-process requests."""
    cache.clear()
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@hypothesis.settings(
    max_examples=25, deadline=None, suppress_health_check=list(hypothesis.HealthCheck), derandomize=True
)
def test_no_generated_request_causes_a_server_error_or_an_undocumented_answer(case: schemathesis.Case) -> None:
    service = "quotas" in case.path or case.path.startswith("/api/v1/webhooks/")
    token = issue_token(sub=USER, role="service_role" if service else "authenticated")
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
