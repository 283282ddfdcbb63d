import pytest
from django.test import override_settings

from velocity.checks import check_warm_pool


@pytest.mark.parametrize(
    ("settings", "valid"),
    [
        ({"WARM_POOL_MIN": 1, "WARM_POOL_MAX": 10, "POOL_BUDGET_USD_PER_HOUR": "0.05"}, True),
        ({"WARM_POOL_SIZE": 2, "WARM_POOL_MIN": -1, "WARM_POOL_MAX": -1, "POOL_BUDGET_USD_PER_HOUR": ""}, True),
        ({"WARM_POOL_MIN": 5, "WARM_POOL_MAX": 2, "POOL_BUDGET_USD_PER_HOUR": ""}, False),
        ({"WARM_POOL_MIN": 0, "WARM_POOL_MAX": 2, "POOL_BUDGET_USD_PER_HOUR": "five"}, False),
        ({"WARM_POOL_MIN": 0, "WARM_POOL_MAX": 2, "POOL_BUDGET_USD_PER_HOUR": "-1"}, False),
    ],
)
def test_contradictory_or_malformed_pool_settings_are_error_e012(settings: dict[str, object], valid: bool) -> None:
    with override_settings(**settings):
        messages = check_warm_pool(None)
    assert [m.id for m in messages] == ([] if valid else ["velocity.E012"])
    assert all("warm pool" in m.msg for m in messages)
