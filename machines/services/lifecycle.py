"""Machine lifecycle: create, record every transition, destroy.

Every state change is a conditional update (``filter(state__in=...)``) whose row count decides who won,
and writes one ``MachineEvent`` with its source; the operator views hear about it through
``realtime_bridge.events``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from machines.models import (
    GONE_STATES,
    EventSource,
    Machine,
    MachineEvent,
    MachineState,
    Provider,
    hash_token,
    new_machine_token,
)
from machines.providers import get_provider
from machines.providers.base import (
    Guest,
    MachineSpec,
    ProviderError,
    preview_metadata,
)
from machines.providers.base import MachineState as ProviderState
from machines.selectors import machine_cost_so_far
from machines.signals import machines_lost
from realtime_bridge import events, publish
from velocity import metrics
from velocity.audit import audit
from velocity.auth import AGENT_AUDIENCE, AGENT_MACHINE_CLAIM, AGENT_PROJECT_CLAIM, issue_token

logger = logging.getLogger(__name__)


class SessionRef(Protocol):
    """What a machine needs to know of the work it runs (a session of the app above, which it cannot import)."""

    id: uuid.UUID
    project_id: str
    user_id: uuid.UUID


START_TIMEOUT_SECONDS = 60
KEY_ENDING_STATES = (*GONE_STATES, MachineState.DESTROYING)
STATE_TIMESTAMPS: dict[str, str] = {
    MachineState.STARTED: "started_at",
    MachineState.STOPPED: "stopped_at",
    MachineState.DESTROYED: "destroyed_at",
}


def machine_transition(
    *,
    machine: Machine,
    to_state: str,
    source: str,
    from_states: Iterable[str] | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Move the machine to ``to_state`` if it is still in one of ``from_states`` (default: its current state)."""
    now = now or timezone.now()
    allowed = list(from_states) if from_states is not None else [machine.state]
    changes: dict[str, Any] = {"state": to_state, "updated_at": now}
    if to_state in STATE_TIMESTAMPS:
        changes[STATE_TIMESTAMPS[to_state]] = now
    with transaction.atomic():
        updated = Machine.objects.filter(id=machine.id, state__in=allowed).exclude(state=to_state).update(**changes)
        if not updated:
            return False
        previous = machine.state
        for name, value in changes.items():
            setattr(machine, name, value)
        MachineEvent.objects.create(
            machine=machine, from_state=previous, to_state=to_state, source=source, detail=detail or {}, at=now
        )
        state_event = _state_event(machine, source)
        publish.publish_on_commit(state_event)
        if to_state in KEY_ENDING_STATES and state_event.project_id:
            # The agent's realtime key dies with its machine: its open channels are closed now.
            publish.reauthorize_on_commit(topic=events.project_topic(state_event.project_id))
    if to_state in GONE_STATES:
        _count_gone(machine, source=source, detail=detail or {}, now=now)
    return True


def _count_gone(machine: Machine, *, source: str, detail: dict[str, Any], now: datetime) -> None:
    reason = str(detail.get("session_end_reason") or source)
    cost = machine_cost_so_far(machine, now)
    metrics.machine_gone(state=machine.state, reason=reason, source=source, provider=machine.provider, cost=cost)


def _state_event(machine: Machine, source: str) -> events.Event:
    session = machine.latest_session
    return events.machine_state(
        machine_id=str(machine.id),
        state=machine.state,
        source=source,
        session_id=str(session.id) if session else None,
        project_id=session.project_id if session else None,
    )


def agent_environment(*, machine: Machine, token: str, session: SessionRef | None) -> dict[str, str]:
    """What the preview agent is told: the contract's variables, and for a session, its scoped realtime key."""
    env = {
        "ORCHESTRATOR_URL": settings.ORCHESTRATOR_URL,
        "REALTIME_URL": settings.REALTIME_URL,
        "MACHINE_TOKEN": token,
        "INACTIVITY_TIMEOUT": str(settings.PREVIEW_INACTIVITY_TIMEOUT),
        "AGENT_HEARTBEAT_SECONDS": f"{settings.AGENT_HEARTBEAT_SECONDS:g}",
        "MACHINE_ID": str(machine.id),
    }
    if session is None:
        env["REALTIME_KEY"] = machine_realtime_key(machine=machine, project_id=None)
    else:
        env.update(
            PROJECT_ID=session.project_id,
            SESSION_ID=str(session.id),
            REALTIME_KEY=machine_realtime_key(machine=machine, project_id=session.project_id),
        )
    return env


def machine_key_seconds() -> int:
    """How long a machine's realtime key is valid from its issue: no session may run longer (a session is
    extended at most this far past its creation, and its key is issued after that)."""
    return settings.PREVIEW_SESSION_TTL + 3600


def machine_realtime_key(*, machine: Machine, project_id: str | None) -> str:
    """A key that lets this machine's agent use only its own project's channel, while the machine lives.

    Its audience is the agents' (the REST API refuses it); the channel policy checks the project claim
    and that the machine is not gone. A warm machine's key (``project_id`` None) has no project claim: the
    endpoint accepts it at the handshake, so the agent is connected before its claim, and it joins nothing;
    once assigned, the agent joins ``project:{id}`` on that socket with the key its assignment carries.
    """
    project = {} if project_id is None else {AGENT_PROJECT_CLAIM: project_id}
    return issue_token(
        sub=machine.id,
        role="authenticated",
        audience=AGENT_AUDIENCE,
        ttl=machine_key_seconds(),
        extra={**project, AGENT_MACHINE_CLAIM: str(machine.id)},
    )


def machine_create(*, session: SessionRef | None, memory_mb: int, source: str = EventSource.API) -> Machine:
    """Create a machine for ``session`` (or a warm one when None) and wait until it runs."""
    machine, spec = machine_prepare(session=session, memory_mb=memory_mb, source=source)
    machine_launch(machine=machine, spec=spec, source=source)
    return machine


def machine_prepare(
    *, session: SessionRef | None, memory_mb: int, source: str = EventSource.API
) -> tuple[Machine, MachineSpec]:
    """The machine's row (``created``) and what to ask the provider for; the token lives only in the spec."""
    token, token_hash = new_machine_token()
    provider = Provider(settings.MACHINE_PROVIDER)
    machine = Machine.objects.create(
        assigned_at=None if session is None else timezone.now(),
        provider=settings.MACHINE_PROVIDER,
        app="" if provider.reached_directly else settings.FLY_APP_NAME,
        region="local" if provider.reached_directly else settings.FLY_REGION,
        image=settings.PREVIEW_CONTAINER_IMAGE,
        memory_mb=memory_mb,
        token_hash=token_hash,
        is_warm=session is None,
    )
    MachineEvent.objects.create(machine=machine, from_state="", to_state=MachineState.CREATED, source=source)
    metrics.machine_created(warm=session is None)
    spec = MachineSpec(
        name=f"velocity-{machine.id.hex}",
        image=settings.PREVIEW_CONTAINER_IMAGE,
        guest=Guest(cpu_kind="shared", cpus=1, memory_mb=memory_mb),
        env=agent_environment(machine=machine, token=token, session=session),
        metadata=_metadata(machine, session),
        region=settings.FLY_REGION,
    )
    return machine, spec


def machine_launch(*, machine: Machine, spec: MachineSpec, source: str = EventSource.API) -> None:
    """Create the machine at the provider and wait until it runs.

    On any provider failure the machine is destroyed at the provider (best effort), marked failed,
    and the error is raised: nothing is left running.
    """
    try:
        _launch(machine, spec, source=source)
    except ProviderError as exc:
        _abandon(machine, error=exc, source=source)
        raise


def _metadata(machine: Machine, session: SessionRef | None) -> dict[str, str]:
    metadata = preview_metadata(
        session_id=str(session.id) if session else "",
        project_id=session.project_id if session else "",
        user_id=str(session.user_id) if session else "",
    )
    return {**metadata, "velocity_machine_id": str(machine.id)}


def _launch(machine: Machine, spec: MachineSpec, *, source: str) -> None:
    provider = get_provider(machine.provider)
    created = provider.create(spec)
    # Conditional: if the machine was destroyed while the provider was creating it (the session
    # ended meanwhile), the new machine must not outlive this call.
    recorded = Machine.objects.filter(id=machine.id, state=MachineState.CREATED).update(
        provider_machine_id=created.id, address=created.private_address or "", updated_at=timezone.now()
    )
    if not recorded:
        provider.destroy(created.id, force=True)
        logger.info("machine launch cancelled", extra={"machine_id": str(machine.id)})
        return
    machine.provider_machine_id, machine.address = created.id, created.private_address or ""
    machine_transition(machine=machine, to_state=MachineState.STARTING, source=EventSource.PROVIDER)
    provider.wait_for_state(created.id, ProviderState.STARTED, timeout=START_TIMEOUT_SECONDS)
    if machine_transition(machine=machine, to_state=MachineState.STARTED, source=EventSource.PROVIDER):
        logger.info("machine started", extra={"machine_id": str(machine.id), "provider_id": created.id})


def _abandon(machine: Machine, *, error: ProviderError, source: str) -> None:
    logger.warning(
        "machine launch failed", extra={"machine_id": str(machine.id), "error": str(error), "status": error.status}
    )
    if machine.provider_machine_id:
        try:
            get_provider(machine.provider).destroy(machine.provider_machine_id, force=True)
        except ProviderError:
            logger.warning(
                "destroy after failed launch failed; reconciliation will retry", extra={"machine_id": str(machine.id)}
            )
    machine_transition(
        machine=machine,
        to_state=MachineState.FAILED,
        source=source,
        from_states=[s for s in MachineState.values if s not in GONE_STATES],
        detail={"error": str(error)[:300]},
    )


def machine_destroy(*, machine_id: uuid.UUID, source: str, detail: dict[str, Any] | None = None) -> int:
    """Destroy the machine at the provider and record it; a machine already gone is left as it is (0)."""
    machine = Machine.objects.filter(id=machine_id).first()
    if machine is None or machine.is_gone:
        return 0
    live = [s for s in MachineState.values if s not in GONE_STATES]
    if not machine_transition(
        machine=machine, to_state=MachineState.DESTROYING, source=source, from_states=live, detail=detail
    ):
        return 0
    # Re-read under the new state: a launch that recorded its provider id a moment ago is seen here,
    # and a launch that had not yet recorded it sees "destroying" and cleans up after itself.
    machine.refresh_from_db(fields=["provider_machine_id"])
    if machine.provider_machine_id:
        try:
            get_provider(machine.provider).destroy(machine.provider_machine_id, force=True)
        except ProviderError as exc:
            # Left in "destroying": reconciliation finishes the job once the provider answers again.
            logger.warning("machine destroy failed", extra={"machine_id": str(machine.id), "error": str(exc)})
            return 0
    machine_transition(machine=machine, to_state=MachineState.DESTROYED, source=source, detail=detail)
    return 1


def machine_restart(*, machine_id: uuid.UUID, source: str, reason: str, now: datetime) -> bool:
    """Restart a started machine's processes through its provider (its hung agent starts again) and record it.

    The machine keeps its state (``started``): the event is ``started → started`` with ``{"restarted": true,
    "reason": ...}``, as a pool claim is. False when the machine is not started or the provider refused.
    """
    machine = Machine.objects.filter(id=machine_id, state=MachineState.STARTED).first()
    if machine is None or not machine.provider_machine_id:
        return False
    try:
        get_provider(machine.provider).restart(machine.provider_machine_id)
    except ProviderError as exc:
        logger.warning("machine restart failed", extra={"machine_id": str(machine.id), "error": str(exc)})
        return False
    with transaction.atomic():
        MachineEvent.objects.create(
            machine=machine,
            from_state=machine.state,
            to_state=machine.state,
            source=source,
            detail={"restarted": True, "reason": reason[:300]},
            at=now,
        )
        publish.publish_on_commit(_state_event(machine, source))
    logger.info("machine restarted", extra={"machine_id": str(machine.id), "reason": reason})
    return True


def machine_kill(*, machine_id: uuid.UUID, actor: Any | None, now: datetime, reason: str = "") -> bool:
    """An operator's kill: end the machine's live session (reason ``operator``), destroy it, audit who did it
    and why (``reason``, kept in the audit record and the session's end detail).

    False when the machine is unknown or already gone; the audit record is written only for a real kill.
    """
    machine = Machine.objects.filter(id=machine_id).first()
    if machine is None or machine.is_gone:
        return False
    reason = reason.strip()[:500]
    before = {"state": machine.state, "is_warm": machine.is_warm}
    detail = {"actor": getattr(actor, "username", None) or "system"}
    ended = end_sessions_of_machines(
        [machine.id], reason="operator", now=now, source=EventSource.OPERATOR, detail=_killed(reason)
    )
    machine_destroy(machine_id=machine.id, source=EventSource.OPERATOR, detail=detail)
    machine.refresh_from_db()
    after = {"state": machine.state, "sessions_ended": ended, **({"reason": reason} if reason else {})}
    audit(actor=actor, action="machine.kill", target=machine, before=before, after=after)
    logger.info("machine killed", extra={"machine_id": str(machine.id), "actor": detail["actor"]})
    return True


def _killed(reason: str) -> str:
    return f"killed by an operator: {reason}" if reason else "killed by an operator"


def machine_stop_all_local(*, now: datetime) -> int:
    """On ``make up``'s exit: destroy every local machine (they run in their own process groups), ending sessions.

    Machines the database knows are destroyed through ``machine_destroy`` (recorded, source ``operator``)
    after their sessions end; any other machine directory the local provider still has is destroyed too.
    """
    live = Machine.objects.filter(provider=Provider.LOCAL).exclude(state__in=GONE_STATES)
    machine_ids = list(live.values_list("id", flat=True))
    end_sessions_of_machines(
        machine_ids, reason="operator", now=now, source=EventSource.OPERATOR, detail="the orchestrator stopped"
    )
    stopped = sum(
        machine_destroy(machine_id=machine_id, source=EventSource.OPERATOR, detail={"reason": "orchestrator stopped"})
        for machine_id in machine_ids
    )
    provider = get_provider(Provider.LOCAL)
    for leftover in provider.list():
        provider.destroy(leftover.id, force=True)
    return stopped


def end_sessions_of_machines(
    machine_ids: Iterable[uuid.UUID], *, reason: str, now: datetime, source: str, detail: str = ""
) -> int:
    """End the work running on these machines (their sessions); returns how many pieces of work ended.

    A session's end (its status, reason, events and the release of its machine) belongs to the sessions app,
    which listens to ``machines_lost``; the operator's kill and reconciliation both start from a machine.
    """
    answers = machines_lost.send(
        sender=Machine, machine_ids=list(machine_ids), reason=reason, now=now, source=source, detail=detail
    )
    ended: Any = sum(answer for _, answer in answers)  # each receiver answers a count
    return int(ended)


def machine_get_by_token(token: str) -> Machine | None:
    if not token:
        return None
    return Machine.objects.filter(token_hash=hash_token(token)).exclude(state__in=GONE_STATES).first()


def machine_preview_url(machine: Machine, session: SessionRef) -> str:
    """Where the editor embeds the preview.

    A local machine is reached directly on its loopback port (another origin by port). A Fly machine
    is reached on a host of its own, ``https://<session>.<PREVIEW_HOST_SUFFIX>/`` with paths unchanged,
    whose replay route answers ``fly-replay`` so Fly's proxy delivers the request straight to the
    machine. There is no fallback onto the orchestrator's origin: a preview's scripts would run next
    to /admin/ there (velocity.E009 reports the missing suffix at startup).
    """
    if Provider(machine.provider).reached_directly:
        return f"{machine.address}/"
    if not settings.PREVIEW_HOST_SUFFIX:
        raise ImproperlyConfigured("Fly previews need PREVIEW_HOST_SUFFIX (velocity.E009).")
    return f"https://{session.id}.{settings.PREVIEW_HOST_SUFFIX}/"


def machine_replay_header(machine: Machine, *, state: str = "") -> str:
    """Fly's ``fly-replay`` value that sends a request to exactly this machine of its app."""
    fields = [f"app={machine.app or settings.FLY_APP_NAME}", f"instance={machine.provider_machine_id}"]
    if state:
        fields.append(f"state={state}")
    return ";".join(fields)
