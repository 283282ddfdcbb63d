"""A malformed retry schedule is a configuration error at start (``webhooks.E001``), not a failure at the
first failed delivery."""

from __future__ import annotations

import pytest
from django.test import override_settings

from webhooks.checks import check_retry_schedule


@pytest.mark.parametrize("schedule", ["5,30,soon", "5,-1", "0"])
def test_a_malformed_retry_schedule_is_refused(schedule: str) -> None:
    with override_settings(WEBHOOKS_RETRY_SCHEDULE=schedule):
        [error] = check_retry_schedule(None)
    assert error.id == "webhooks.E001" and schedule in error.msg


@pytest.mark.parametrize("schedule", ["5,30,120,600,3600,21600", "1", ""])
def test_a_well_formed_one_passes(schedule: str) -> None:
    with override_settings(WEBHOOKS_RETRY_SCHEDULE=schedule):
        assert check_retry_schedule(None) == []
