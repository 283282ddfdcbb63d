"""The client against Fly's official OpenAPI 3.1 spec, and the create body against the seed.

Every request the client sends goes over a real socket to the fake, which validates it (method,
path, query, body, auth) with openapi-core, and validates its own normal answers against the
spec's response schemas. The validator is shown to reject bad calls, so a pass means something.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from machines.providers.base import Guest, MachineSpec, MachineState, preview_metadata
from machines.providers.fly import FlyConfig, FlyProvider
from machines.testing.fly_fake import FakeClock, FakeFly, running
from machines.testing.spec_contract import SPEC_MISSING, Answer, SpecContract, WireRequest, shared_contract, spec_waived
from velocity.testing import require

CLIENT_OPERATIONS = {
    "Machines_create",
    "Machines_list",
    "Machines_show",
    "Machines_start",
    "Machines_stop",
    "Machines_restart",
    "Machines_wait",
    "Machines_delete",
}

# Section 6.2 of the deployment plan, the machine config the issue requires.
SEED_MACHINE_CONFIG = {
    "image": "registry.fly.io/velocity-preview:v1",
    "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
    "services": [{"ports": [{"port": 8080, "handlers": ["http"]}], "protocol": "tcp", "internal_port": 8080}],
    "auto_destroy": True,
    "restart": {"policy": "on-failure", "max_retries": 3},
}


@pytest.fixture
def contract() -> SpecContract:
    contract = shared_contract()
    require(contract or spec_waived(), SPEC_MISSING)
    if contract is None:
        pytest.skip(SPEC_MISSING)
    assert contract is not None
    return contract


@pytest.fixture
def fake(contract: SpecContract) -> Iterator[FakeFly]:
    with running(FakeFly(contract=contract, clock=FakeClock())) as fake:
        yield fake


def _provider(fake: FakeFly, **overrides: Any) -> FlyProvider:
    clock = fake.clock
    assert isinstance(clock, FakeClock)
    config = FlyConfig(
        api_token="fo1_test-token",
        app_name="velocity-previews",
        base_url=fake.base_url,
        image="registry.fly.io/velocity-preview:v1",
        region="iad",
    )
    return FlyProvider(replace(config, **overrides), clock=clock, sleep=clock.sleep)


def _spec(name: str = "preview-s1") -> MachineSpec:
    env = {"PROJECT_ID": "p1", "SESSION_ID": "s1", "MACHINE_TOKEN": "mt"}
    return MachineSpec(name=name, env=env, metadata=preview_metadata(session_id="s1", project_id="p1", user_id="u1"))


def test_every_request_the_client_sends_and_every_fake_answer_matches_the_spec(fake: FakeFly) -> None:
    fake.page_size = 1
    fake.add_machine("other", metadata={"velocity_managed": "true", "velocity_session_id": "s1"})
    with _provider(fake) as fly:
        machine = fly.create(_spec())
        fly.wait_for_state(machine.id, MachineState.STARTED, timeout=5)
        assert len(fly.list({"velocity_session_id": "s1"})) == 2
        fly.stop(machine.id)
        fly.wait_for_state(machine.id, MachineState.STOPPED, timeout=5)
        fly.start(machine.id)
        fly.restart(machine.id)
        fly.destroy(machine.id)
        fly.wait_for_state(machine.id, MachineState.DESTROYED, timeout=5, version=machine.version)
    assert fake.violations == []
    assert fake.operations == CLIENT_OPERATIONS
    assert fake.validated_responses >= len(CLIENT_OPERATIONS)


def test_the_validator_rejects_a_body_the_spec_forbids(contract: SpecContract) -> None:
    body = b'{"config": {"guest": {"cpus": "one"}, "restart": {"policy": "sometimes"}}}'
    headers = Headers({"Authorization": "Bearer t", "Content-Type": "application/json"})
    errors = contract.request_errors(WireRequest("POST", "/v1/apps/a/machines", [], headers, body))
    assert any("'one' is not of type 'integer'" in error for error in errors)
    assert any("'sometimes' is not one of" in error for error in errors)


def test_the_validator_rejects_unknown_query_names_and_bad_values(contract: SpecContract) -> None:
    headers = Headers({"Authorization": "Bearer t"})
    delete = WireRequest("DELETE", "/v1/apps/a/machines/m1", [("kill", "true")], headers, b"")
    wait = WireRequest("GET", "/v1/apps/a/machines/m1/wait", [("state", "starting")], headers, b"")
    listing = WireRequest("GET", "/v1/apps/a/machines", [("metadata.velocity_managed", "true")], headers, b"")
    assert contract.request_errors(delete) == ["undeclared query parameter 'kill'"]
    assert any("'starting' is not one of" in error for error in contract.request_errors(wait))
    assert contract.request_errors(listing) == []


def test_the_validator_rejects_a_request_without_credentials(contract: SpecContract) -> None:
    request = WireRequest("GET", "/v1/apps/a/machines/m1", [], Headers(), b"")
    assert any("Security" in error for error in contract.request_errors(request))


def test_the_validator_rejects_a_fake_answer_that_drifts_from_the_spec(contract: SpecContract) -> None:
    request = WireRequest("GET", "/v1/apps/a/machines/m1", [], Headers({"Authorization": "Bearer t"}), b"")
    drifted = Answer(200, {"id": "m1", "state": 3, "host_status": "sleepy"})
    errors = contract.response_errors(request, drifted)
    assert any("3 is not of type 'string'" in error for error in errors)
    assert any("'sleepy' is not one of" in error for error in errors)


def test_the_create_body_carries_the_seed_config_exactly(fake: FakeFly) -> None:
    with _provider(fake, public_https=False) as fly:
        fly.create(_spec())
    body = fake.calls("create")[0].body
    sent = {key: value for key, value in body["config"].items() if key in SEED_MACHINE_CONFIG}
    assert sent == SEED_MACHINE_CONFIG
    assert set(body["config"]) - set(SEED_MACHINE_CONFIG) == {"env", "metadata", "checks"}
    assert fake.violations == []


def test_the_create_body_checks_the_agents_health_over_http(fake: FakeFly) -> None:
    with _provider(fake) as fly:
        fly.create(_spec())
    check = fake.calls("create")[0].body["config"]["checks"]["agent"]
    assert (check["type"], check["port"], check["path"]) == ("http", 8080, "/health")
    assert fake.violations == []


def test_the_validator_rejects_a_check_the_spec_forbids(contract: SpecContract) -> None:
    body = b'{"config": {"checks": {"agent": {"port": "eighty", "tls_skip_verify": "no"}}}}'
    headers = Headers({"Authorization": "Bearer t", "Content-Type": "application/json"})
    errors = contract.request_errors(WireRequest("POST", "/v1/apps/a/machines", [], headers, body))
    assert any("'eighty' is not of type 'integer'" in error for error in errors)


def test_a_restart_kills_at_once_and_is_validated_against_the_spec(fake: FakeFly) -> None:
    with _provider(fake) as fly:
        machine = fly.create(_spec())
        before = fake.machines[machine.id]["instance_id"]
        fly.restart(machine.id)
    (call,) = fake.calls("restart")
    assert call.param("signal") == "SIGKILL"
    assert fake.machines[machine.id]["instance_id"] != before
    assert fake.violations == []


def test_the_create_body_adds_https_ports_after_the_seed_port_by_default(fake: FakeFly) -> None:
    with _provider(fake) as fly:
        fly.create(_spec())
    service = fake.calls("create")[0].body["config"]["services"][0]
    assert service["internal_port"] == 8080
    assert service["ports"] == [
        {"port": 8080, "handlers": ["http"]},
        {"port": 443, "handlers": ["tls", "http"]},
        {"port": 80, "handlers": ["http"], "force_https": True},
    ]


def test_the_create_body_names_tags_and_places_the_machine(fake: FakeFly) -> None:
    spec = MachineSpec(
        name="preview-s2",
        image="registry.fly.io/velocity-preview:v2",
        guest=Guest("performance", 1, 2048),
        env={"REALTIME_URL": "wss://rt"},
        metadata={"velocity_managed": "false", "velocity_session_id": "s2"},
        region="ord",
    )
    with _provider(fake) as fly:
        fly.create(spec)
    body = fake.calls("create")[0].body
    assert (body["name"], body["region"]) == ("preview-s2", "ord")
    assert body["config"]["image"] == "registry.fly.io/velocity-preview:v2"
    assert body["config"]["guest"] == {"cpu_kind": "performance", "cpus": 1, "memory_mb": 2048}
    assert body["config"]["env"] == {"REALTIME_URL": "wss://rt"}
    assert body["config"]["metadata"] == {"velocity_managed": "true", "velocity_session_id": "s2"}
