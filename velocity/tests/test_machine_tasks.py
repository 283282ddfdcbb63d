"""The machines' scheduled jobs, run the way operators run them: ``manage.py sweep --only NAME``."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from machines.models import CostRollup, ReconcileReport
from velocity.schedules import schedule_by_name

pytestmark = pytest.mark.django_db


def sweep(name: str) -> str:
    out = StringIO()
    call_command("sweep", "--only", name, stdout=out)
    return out.getvalue().strip()


def test_the_three_machine_jobs_are_scheduled_in_the_one_place() -> None:
    assert schedule_by_name("reconcile_machines").func == "machines.tasks.reconcile_machines"
    assert schedule_by_name("refill_warm_pool").minutes == 1
    assert schedule_by_name("rollup_costs").func == "machines.tasks.rollup_costs"


def test_sweep_runs_reconciliation_and_stores_its_report(local: Path) -> None:
    assert sweep("reconcile_machines") == (
        "reconcile_machines: 0 machine(s) at local: destroyed 0 orphan(s) ($0.0000/h), buried 0 ghost(s), "
        "0 state mismatch(es), finished 0 stuck destroy(s)"
    )
    assert ReconcileReport.objects.count() == 1


def test_sweep_runs_the_pool_refill_and_the_cost_rollup(local: Path) -> None:
    assert sweep("refill_warm_pool") == "refill_warm_pool: warm pool of 0: created 0, destroyed 0"
    assert sweep("rollup_costs") == "rollup_costs: wrote 0 cost rollup row(s) for today and yesterday"
    assert not CostRollup.objects.exists()
