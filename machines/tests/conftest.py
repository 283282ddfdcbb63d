from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from machines.providers import get_provider


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
