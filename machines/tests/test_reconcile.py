from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from machines.pricing import running_cost, stopped_cost
from machines.providers.base import Guest, MachineState, ProviderMachine, preview_metadata
from machines.reconcile import (
    KnownMachine,
    OrphanReason,
    compute_drift,
    drift_sentence,
    duration_words,
    hourly_cost,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(hours=3)


def _at_fly(
    machine_id: str,
    name: str,
    state: MachineState = MachineState.STARTED,
    *,
    managed: bool = True,
    created_at: datetime = LONG_AGO,
) -> ProviderMachine:
    metadata = preview_metadata(session_id=name, project_id="p", user_id="u") if managed else {"owner": "else"}
    return ProviderMachine(
        id=machine_id,
        name=name,
        state=state,
        raw_state=str(state),
        region="iad",
        metadata=metadata,
        guest=Guest("shared", 1, 512),
        created_at=created_at,
    )


def _in_db(
    name: str,
    provider_id: str | None,
    state: MachineState = MachineState.STARTED,
    *,
    ended_at: datetime | None = None,
    created_at: datetime = LONG_AGO,
) -> KnownMachine:
    return KnownMachine(
        id=f"db-{name}", name=name, provider_id=provider_id, state=state, created_at=created_at, ended_at=ended_at
    )


def test_it_reports_nothing_when_both_sides_agree() -> None:
    report = compute_drift([_at_fly("m1", "s1")], [_in_db("s1", "m1")], now=NOW)
    assert report.is_clean
    assert report.orphan_hourly_cost == 0


def test_a_machine_the_database_does_not_know_is_an_orphan_priced_since_its_creation() -> None:
    report = compute_drift([_at_fly("m1", "s1")], [], now=NOW)
    [orphan] = report.orphans
    assert (orphan.machine.id, orphan.reason, orphan.known) == ("m1", OrphanReason.UNKNOWN, None)
    assert orphan.hourly_cost == running_cost("shared", 1, 512, "iad", 3600)
    assert orphan.cost_so_far == 3 * orphan.hourly_cost


def test_a_machine_the_database_ended_is_an_orphan_priced_since_the_end() -> None:
    ended = _in_db("s1", "m1", MachineState.DESTROYED, ended_at=NOW - timedelta(hours=1))
    report = compute_drift([_at_fly("m1", "s1", MachineState.STOPPED)], [ended], now=NOW)
    [orphan] = report.orphans
    assert (orphan.reason, orphan.known) == (OrphanReason.ENDED, ended)
    assert orphan.cost_so_far == stopped_cost(1, 3600)
    assert report.orphan_cost_so_far == orphan.cost_so_far


def test_a_live_database_machine_the_provider_lacks_is_a_ghost() -> None:
    live, ended = _in_db("s1", "m1"), _in_db("s2", "m2", ended_at=LONG_AGO)
    report = compute_drift([], [live, ended], now=NOW)
    assert report.ghosts == (live,)
    assert report.orphans == ()


def test_a_destroyed_machine_at_the_provider_makes_its_live_record_a_ghost() -> None:
    report = compute_drift([_at_fly("m1", "s1", MachineState.DESTROYED)], [_in_db("s1", "m1")], now=NOW)
    assert [g.provider_id for g in report.ghosts] == ["m1"]


def test_machines_that_are_not_ours_are_never_reported() -> None:
    report = compute_drift([_at_fly("m1", "x", managed=False)], [], now=NOW)
    assert report.is_clean


def test_young_machines_are_given_grace_on_both_sides() -> None:
    young = NOW - timedelta(seconds=30)
    report = compute_drift([_at_fly("m1", "s1", created_at=young)], [_in_db("s2", "m2", created_at=young)], now=NOW)
    assert report.is_clean


def test_a_record_whose_create_answer_was_lost_is_matched_by_name() -> None:
    report = compute_drift([_at_fly("m1", "s1")], [_in_db("s1", None)], now=NOW)
    assert report.is_clean


def test_a_second_machine_with_a_known_name_but_another_id_is_an_orphan() -> None:
    report = compute_drift([_at_fly("m2", "s1")], [_in_db("s1", "m1")], now=NOW)
    assert [o.machine.id for o in report.orphans] == ["m2"]
    assert [g.provider_id for g in report.ghosts] == ["m1"]


def test_a_state_difference_is_a_mismatch_not_an_orphan() -> None:
    report = compute_drift([_at_fly("m1", "s1", MachineState.STOPPED)], [_in_db("s1", "m1")], now=NOW)
    [mismatch] = report.mismatches
    assert (mismatch.known.state, mismatch.machine.state) == (MachineState.STARTED, MachineState.STOPPED)
    assert report.orphans == report.ghosts == ()


def test_the_hourly_cost_follows_the_state() -> None:
    assert hourly_cost(_at_fly("m1", "s1", MachineState.SUSPENDED), rootfs_gb=Decimal(2)) == stopped_cost(2, 3600)
    assert hourly_cost(_at_fly("m1", "s1", MachineState.DESTROYING)) == 0


def test_a_finding_reads_as_what_was_done_in_the_past_tense() -> None:
    sentence = drift_sentence(
        kind="orphan",
        action="destroyed",
        name="fly-abc",
        why="unknown to the database",
        hourly_cost=Decimal("0.0081"),
        running_for=timedelta(minutes=4, seconds=10),
    )
    assert sentence == "Destroyed orphan fly-abc ($0.0081/h, running 4 min): unknown to the database"


def test_a_finding_without_cost_or_age_says_only_what_it_can() -> None:
    assert (
        drift_sentence(kind="mismatch", action="updated", name="m1", running_for=None)
        == "Updated mismatched machine m1"
    )


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(seconds=45), "45 s"),
        (timedelta(minutes=4), "4 min"),
        (timedelta(hours=2, minutes=5), "2 h 5 min"),
        (timedelta(days=3, hours=4), "3 d 4 h"),
    ],
)
def test_durations_are_as_precise_as_an_operator_needs(span: timedelta, words: str) -> None:
    assert duration_words(span) == words
