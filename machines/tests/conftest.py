from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from machines.providers import get_provider
from machines.tests.fly_fake import FakeFly, running


@pytest.fixture
def fly() -> Iterator[FakeFly]:
    """The Fly provider, configured against the fake Fly API (a real loopback HTTP server)."""
    with (
        running(FakeFly()) as fake,
        override_settings(
            MACHINE_PROVIDER="fly", FLY_API_TOKEN="fo1_test", FLY_APP_NAME="previews", FLY_API_BASE_URL=fake.base_url
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
