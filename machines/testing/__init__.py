"""Test support for the machines app, shipped with it so no shipped code imports from a ``tests`` folder.

``fly_fake`` is a fake Fly Machines API on a real loopback server (for faults the real API cannot be made to
show), ``spec_contract`` checks wire calls against Fly's official OpenAPI spec, and the ``fly_api`` fixture
(registered by the root conftest) points the Fly provider at a fresh fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from machines.providers import get_provider
from machines.testing.fly_fake import FakeFly, running

FLY_PREVIEW_SUFFIX = "example-previews.dev"  # the `fly_api` fixture's preview domain, apart from the orchestrator's


@pytest.fixture
def fly_api() -> Iterator[FakeFly]:
    """The fake Fly API, with the Fly provider configured against it, so provisioning makes real Fly HTTP
    requests. Previews get their own hosts under ``FLY_PREVIEW_SUFFIX``, as every Fly deployment must
    (velocity.E009)."""
    fake_token = "fo1_test"
    with (
        running(FakeFly()) as fake,
        override_settings(
            MACHINE_PROVIDER="fly",
            FLY_API_TOKEN=fake_token,
            FLY_APP_NAME="previews",
            FLY_API_BASE_URL=fake.base_url,
            PREVIEW_HOST_SUFFIX=FLY_PREVIEW_SUFFIX,
            ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, f".{FLY_PREVIEW_SUFFIX}"],
        ),
    ):
        get_provider.cache_clear()
        yield fake
    get_provider.cache_clear()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Path]:
    """The local provider under a temporary folder; every machine left running is destroyed afterwards."""
    with override_settings(VAR_DIR=tmp_path, MACHINE_PROVIDER="local"):
        get_provider.cache_clear()
        yield tmp_path / "machines"
        provider = get_provider()
        for machine in provider.list():
            provider.destroy(machine.id)
    get_provider.cache_clear()
