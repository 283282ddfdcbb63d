"""Placeholder."""

from resilience.context import Context
from resilience.report import NotRun, Outcome


def run(ctx: Context, out: Outcome) -> None:
    raise NotRun("not written yet")


agent_killed = sigkill_mid_provisioning = run
