"""The Fly client's behaviour under faults: retries, pacing, idempotent create, errors, logs.

The fake is a real HTTP server on a loopback port; time is a fake clock that moves only when
the client sleeps, so backoff and pacing are checked exactly and cost no real time. Slow
responses are real (a 0.5 s client timeout against a 0.8 s answer).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from machines.providers.base import (
    BadRequest,
    Conflict,
    MachineProvider,
    MachineSpec,
    MachineState,
    NotFound,
    RateLimited,
    Unavailable,
    WaitTimeout,
    preview_metadata,
)
from machines.providers.fly import FlyConfig, FlyProvider, authorization_header
from machines.providers.fly_wire import machine_from_json, parse_retry_after, parse_timestamp
from machines.testing.fly_fake import FakeClock, FakeFly, Fault, running
from machines.testing.spec_contract import SPEC_MISSING, shared_contract, spec_waived
from velocity.testing import in_ci, require

TOKEN = "fo1_secret-token-value"
# Long enough that a loaded CI machine still answers normal calls in time.
CLIENT_TIMEOUT = 0.5
SLOW = 0.8


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeFly]:
    # Every request of every fault path is checked against Fly's spec too, when it is at hand.
    contract = shared_contract()  # without the spec these tests still run locally, unvalidated; never in CI
    if in_ci() and not spec_waived():
        require(contract, SPEC_MISSING)
    with running(FakeFly(contract=contract, clock=clock)) as fake:
        yield fake
    assert fake.violations == []


@pytest.fixture
def make_fly_provider(fake: FakeFly, clock: FakeClock) -> Iterator[Any]:
    made: list[FlyProvider] = []

    def make(**overrides: Any) -> FlyProvider:
        config = FlyConfig(api_token=TOKEN, app_name="previews", base_url=fake.base_url, image="img:1")
        fly_provider = FlyProvider(
            replace(config, request_timeout=CLIENT_TIMEOUT, **overrides),
            clock=clock,
            sleep=clock.sleep,
            jitter=lambda: 0.5,
        )
        made.append(fly_provider)
        return fly_provider

    yield make
    for fly_provider in made:
        fly_provider.close()


@pytest.fixture
def fly_provider(make_fly_provider: Any) -> FlyProvider:
    return make_fly_provider()


def _spec(name: str = "preview-s1", session: str = "s1") -> MachineSpec:
    return MachineSpec(name=name, metadata=preview_metadata(session_id=session, project_id="p1", user_id="u1"))


def _named(fake: FakeFly, name: str) -> list[dict[str, Any]]:
    return [m for m in fake.machines.values() if m["name"] == name and m["state"] != "destroyed"]


# -- configuration and auth ----------------------------------------------------------------


def test_the_fly_provider_is_a_machine_provider(fake: FakeFly, fly_provider: FlyProvider) -> None:
    provider: MachineProvider = fly_provider  # the interface is checked by mypy; here, that it answers
    machine_id = fake.add_machine("m")
    assert [machine.id for machine in provider.list()] == [machine_id]
    assert provider.get(machine_id).state is MachineState.STARTED


def test_it_sends_macaroon_tokens_verbatim_and_others_as_bearer() -> None:
    assert authorization_header("FlyV1 fm2_abc,fm2_def") == "FlyV1 fm2_abc,fm2_def"
    assert authorization_header("fo1_abc") == "Bearer fo1_abc"


def test_every_request_carries_the_authorization_header(fake: FakeFly, make_fly_provider: Any) -> None:
    make_fly_provider(api_token="FlyV1 fm2_macaroon").get(fake.add_machine("m"))
    assert fake.requests[0].headers["Authorization"] == "FlyV1 fm2_macaroon"
    # The spec documents only Bearer; Fly's docs and fly-go also send macaroons this way.
    assert all("FlyBearerAuth" in violation for violation in fake.violations)
    fake.violations.clear()


def test_config_reads_the_contract_environment_names() -> None:
    env = {
        "FLY_API_TOKEN": TOKEN,
        "FLY_APP_NAME": "previews",
        "FLY_REGION": "ord",
        "PREVIEW_CONTAINER_IMAGE": "registry.fly.io/p:1",
    }
    config = FlyConfig.from_env(env)
    assert (config.app_name, config.region, config.image) == ("previews", "ord", "registry.fly.io/p:1")
    assert config.base_url == "https://api.machines.dev"
    assert FlyConfig.from_env({**env, "FLY_API_BASE_URL": "http://_api.internal:4280"}).base_url.endswith("4280")
    assert TOKEN not in repr(config)


def test_config_names_every_missing_setting() -> None:
    with pytest.raises(ValueError, match="FLY_API_TOKEN, FLY_APP_NAME"):
        FlyConfig.from_env({})


# -- retries -------------------------------------------------------------------------------


def test_it_honours_retry_after_on_429_then_succeeds(
    fake: FakeFly, fly_provider: FlyProvider, clock: FakeClock
) -> None:
    machine_id = fake.add_machine("m")
    fake.inject("start", Fault(status=429, retry_after="2"), Fault(status=429, retry_after="3"))
    fly_provider.start(machine_id)
    assert len(fake.calls("start")) == 3
    assert clock.sleeps == [2.0, 3.0]


def test_it_backs_off_exponentially_with_jitter_on_5xx(
    fake: FakeFly, fly_provider: FlyProvider, clock: FakeClock
) -> None:
    machine_id = fake.add_machine("m")
    fake.inject("get", Fault(status=500), Fault(status=503), Fault(status=502))
    assert fly_provider.get(machine_id).id == machine_id
    # ceilings 0.5, 1, 2 s; the injected jitter 0.5 gives three quarters of each
    assert clock.sleeps == [0.375, 0.75, 1.5]


def test_it_gives_up_after_the_last_attempt_and_logs_the_request_id(
    fake: FakeFly, fly_provider: FlyProvider, caplog: pytest.LogCaptureFixture
) -> None:
    machine_id = fake.add_machine("m")
    fake.inject("stop", *[Fault(status=503)] * 4)
    with caplog.at_level(logging.WARNING), pytest.raises(Unavailable) as raised:
        fly_provider.stop(machine_id)
    assert len(fake.calls("stop")) == 4
    assert raised.value.request_id and raised.value.request_id.startswith("req-")
    logged = [r for r in caplog.records if r.getMessage() == "fly request failed"]
    assert [r.fly_request_id for r in logged][-1] == raised.value.request_id  # type: ignore[attr-defined]


def test_it_raises_rate_limited_rather_than_sleeping_through_a_long_retry_after(
    fake: FakeFly, fly_provider: FlyProvider, clock: FakeClock
) -> None:
    machine_id = fake.add_machine("m")
    fake.inject("stop", Fault(status=429, retry_after="120"))
    with pytest.raises(RateLimited) as raised:
        fly_provider.stop(machine_id)
    assert raised.value.retry_after == 120.0
    assert clock.sleeps == []


def test_it_retries_a_dropped_connection_and_a_slow_response(fake: FakeFly, fly_provider: FlyProvider) -> None:
    machine_id = fake.add_machine("m")
    fake.inject("get", Fault(drop=True), Fault(delay=SLOW))
    assert fly_provider.get(machine_id).state is MachineState.STARTED
    assert len(fake.calls("get")) == 3


def test_it_retries_when_nothing_listens(make_fly_provider: Any, clock: FakeClock) -> None:
    fly_provider = make_fly_provider(base_url="http://127.0.0.1:9")  # the discard port: nothing answers
    with pytest.raises(Unavailable, match="cannot connect"):
        fly_provider.get("m1")
    assert len(clock.sleeps) == 3


# -- idempotent create ---------------------------------------------------------------------


def test_it_never_creates_a_second_machine_when_a_create_times_out(fake: FakeFly, fly_provider: FlyProvider) -> None:
    fake.inject("create", Fault(apply=True, delay=SLOW))
    machine = fly_provider.create(_spec())
    assert [m["id"] for m in _named(fake, "preview-s1")] == [machine.id]
    assert [r.action for r in fake.requests] == ["create", "list"]


def test_it_never_creates_a_second_machine_when_the_connection_drops_after_create(
    fake: FakeFly, fly_provider: FlyProvider
) -> None:
    fake.inject("create", Fault(apply=True, drop=True))
    machine = fly_provider.create(_spec())
    assert [m["id"] for m in _named(fake, "preview-s1")] == [machine.id]
    assert len(fake.calls("create")) == 1


def test_it_never_creates_a_second_machine_when_a_5xx_follows_the_create(
    fake: FakeFly, fly_provider: FlyProvider
) -> None:
    fake.inject("create", Fault(apply=True, status=502))
    machine = fly_provider.create(_spec())
    assert [m["id"] for m in _named(fake, "preview-s1")] == [machine.id]


def test_it_looks_for_the_machine_once_more_when_the_last_create_attempt_is_ambiguous(
    fake: FakeFly, fly_provider: FlyProvider
) -> None:
    fake.inject("create", *[Fault(status=503)] * 3, Fault(apply=True, status=503))
    machine = fly_provider.create(_spec())
    assert len(fake.calls("create")) == 4
    assert [m["id"] for m in _named(fake, "preview-s1")] == [machine.id]


def test_it_creates_again_when_the_lookup_after_an_ambiguous_failure_finds_nothing(
    fake: FakeFly, fly_provider: FlyProvider
) -> None:
    fake.inject("create", Fault(drop=True))
    machine = fly_provider.create(_spec())
    assert [r.action for r in fake.requests] == ["create", "list", "create"]
    assert [m["id"] for m in _named(fake, "preview-s1")] == [machine.id]


def test_it_retries_a_429_create_without_a_lookup(fake: FakeFly, fly_provider: FlyProvider) -> None:
    fake.inject("create", Fault(status=429, retry_after="1"))
    fly_provider.create(_spec())
    assert [r.action for r in fake.requests] == ["create", "create"]


def test_a_name_conflict_on_create_returns_the_existing_machine(fake: FakeFly, fly_provider: FlyProvider) -> None:
    existing = fake.add_machine("preview-s1", metadata=preview_metadata(session_id="s1", project_id="p1", user_id="u1"))
    assert fly_provider.create(_spec()).id == existing
    assert len(_named(fake, "preview-s1")) == 1


def test_a_name_conflict_with_a_foreign_machine_is_an_error(fake: FakeFly, fly_provider: FlyProvider) -> None:
    fake.add_machine("preview-s1", metadata={"owner": "someone-else"})
    with pytest.raises(Conflict):
        fly_provider.create(_spec())


def test_create_without_an_image_is_refused_before_any_request(fake: FakeFly, make_fly_provider: Any) -> None:
    with pytest.raises(BadRequest, match="image"):
        make_fly_provider(image=None).create(_spec())
    assert fake.requests == []


# -- pacing --------------------------------------------------------------------------------


def test_it_never_repeats_an_action_on_a_machine_faster_than_one_per_second_burst_three(
    fake: FakeFly, fly_provider: FlyProvider
) -> None:
    machine_id = fake.add_machine("m")
    for _ in range(8):
        fly_provider.stop(machine_id)
    times = [r.at for r in fake.calls("stop")]
    assert times == [0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t < start + 1.0]
        assert len(in_window) <= 3


def test_pacing_is_per_action_and_per_machine(fake: FakeFly, fly_provider: FlyProvider, clock: FakeClock) -> None:
    first, second = fake.add_machine("a"), fake.add_machine("b")
    for machine_id in (first, second):
        for _ in range(3):
            fly_provider.stop(machine_id)
        fly_provider.start(machine_id)
    for _ in range(10):
        fly_provider.get(first)
    assert clock.sleeps == []


def test_retries_are_paced_too(fake: FakeFly, fly_provider: FlyProvider) -> None:
    machine_id = fake.add_machine("m")
    fly_provider.stop(machine_id)
    fly_provider.stop(machine_id)
    fake.inject("stop", Fault(status=429, retry_after="0"), Fault(status=429, retry_after="0"))
    fly_provider.stop(machine_id)
    times = [r.at for r in fake.calls("stop")]
    assert times[3] - times[0] >= 1.0


# -- waiting -------------------------------------------------------------------------------


def test_wait_uses_the_wait_endpoint_with_the_version_for_stopped(fake: FakeFly, fly_provider: FlyProvider) -> None:
    machine_id = fake.add_machine("m")
    fly_provider.stop(machine_id)
    assert fly_provider.wait_for_state(machine_id, MachineState.STOPPED, timeout=120) is MachineState.STOPPED
    wait = fake.calls("wait")[0]
    assert (wait.param("state"), wait.param("timeout")) == ("stopped", "60")
    assert wait.param("version") == fake.machines[machine_id]["version"]


def test_wait_loops_on_408_and_raises_after_the_timeout(
    fake: FakeFly, fly_provider: FlyProvider, clock: FakeClock
) -> None:
    machine_id = fake.add_machine("m")
    with pytest.raises(WaitTimeout):
        fly_provider.wait_for_state(machine_id, MachineState.SUSPENDED, timeout=10)
    assert clock.now >= 10
    assert all(int(r.param("timeout") or 0) <= 10 for r in fake.calls("wait"))


def test_wait_polls_for_transient_states(fake: FakeFly, fly_provider: FlyProvider, clock: FakeClock) -> None:
    machine_id = fake.add_machine("m")
    with pytest.raises(WaitTimeout):
        fly_provider.wait_for_state(machine_id, MachineState.STARTING, timeout=2)
    assert fake.calls("wait") == []
    assert len(fake.calls("get")) == 4


def test_waiting_for_destroyed_on_a_vanished_machine_succeeds(fly_provider: FlyProvider) -> None:
    assert fly_provider.wait_for_state("gone", MachineState.DESTROYED, timeout=5) is MachineState.DESTROYED


# -- other calls and errors ----------------------------------------------------------------


def test_destroy_forces_and_tolerates_a_machine_already_gone(fake: FakeFly, fly_provider: FlyProvider) -> None:
    machine_id = fake.add_machine("m")
    fly_provider.destroy(machine_id)
    fly_provider.destroy(machine_id)
    assert [r.param("force") for r in fake.calls("destroy")] == ["true", "true"]
    assert fake.machines[machine_id]["state"] == "destroyed"


def test_list_filters_by_metadata_and_follows_every_page(fake: FakeFly, fly_provider: FlyProvider) -> None:
    ours = preview_metadata(session_id="s1", project_id="p1", user_id="u1")
    for i in range(3):
        fake.add_machine(f"ours-{i}", metadata=ours)
    fake.add_machine("theirs", metadata={"velocity_managed": "false"})
    fake.page_size = 2
    machines = fly_provider.list({"velocity_managed": "true"})
    assert sorted(m.name for m in machines) == ["ours-0", "ours-1", "ours-2"]
    assert [r.param("cursor") for r in fake.calls("list")] == [None, "2"]
    assert fake.calls("list")[0].param("metadata.velocity_managed") == "true"


def test_get_of_an_unknown_machine_raises_not_found(fly_provider: FlyProvider) -> None:
    with pytest.raises(NotFound) as raised:
        fly_provider.get("nope")
    assert raised.value.status == 404


def test_the_token_never_reaches_the_logs(
    fake: FakeFly, fly_provider: FlyProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject("get", *[Fault(status=500)] * 4)
    with caplog.at_level(logging.DEBUG), pytest.raises(Unavailable):
        fly_provider.get("m1")
    assert caplog.records
    assert all(TOKEN not in f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


# -- parsing -------------------------------------------------------------------------------


def test_fly_states_beyond_the_contract_map_to_the_nearest_contract_state() -> None:
    def state_of(raw: str) -> MachineState:
        return machine_from_json({"id": "m", "state": raw}, app_name="a").state

    assert state_of("replacing") is MachineState.STARTING
    assert state_of("launch_failed") is MachineState.FAILED
    assert state_of("suspending") is MachineState.STOPPING
    assert state_of("something-new") is MachineState.FAILED


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Fri, 27 Nov 2026 12:00:05 GMT", now=now) == 5.0
    assert parse_retry_after("soon") is None


def test_timestamps_with_nanoseconds_parse_as_aware_utc() -> None:
    parsed = parse_timestamp("2026-11-27T13:00:00.123456789Z")
    assert parsed == datetime(2026, 11, 27, 13, 0, 0, 123456, tzinfo=UTC)
    assert parse_timestamp("garbage") is None
