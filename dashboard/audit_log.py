"""Reads of the audit trail (``dashboard.AuditRecord``) for the dashboard: filtered, and made readable.

A record keeps what the writer knew: a target as ``(type, primary key)`` and two dicts. Readers want the
thing changed (a quota's user, not the quota row), only what changed, and why; ``audit_rows`` gives that.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from dashboard.models import AuditRecord
from dashboard.search import search_parse
from sessions.models import Project

RECENT = 100
QUOTA, FLAG, SESSION, MACHINE, PROJECT = (
    "preview_sessions.quota",
    "preview_sessions.previewflag",
    "preview_sessions.previewsession",
    "machines.machine",
    "preview_sessions.project",
)
WEBHOOK = "webhooks.webhookendpoint"
NOTHING = "(none)"


def recent(limit: int = RECENT) -> list[AuditRecord]:
    return list(AuditRecord.objects.select_related("actor").order_by("-at", "-id")[:limit])


def records_for(*targets: Any) -> list[AuditRecord]:
    """The records about these objects (matched on their primary keys as text; None is skipped)."""
    ids = [str(target.pk) for target in targets if target is not None]
    if not ids:
        return []
    return list(AuditRecord.objects.select_related("actor").filter(target_id__in=ids).order_by("-at", "-id")[:RECENT])


# --- filters -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None
    problems: list[str] = field(default_factory=list)


def audit_filters_parse(params: Mapping[str, str]) -> AuditFilters:
    """The audit page's GET parameters; a time that cannot be read is named in ``problems`` and not applied."""
    text = {name: params.get(name, "").strip() for name in ("actor", "action", "target", "since", "until")}
    problems: list[str] = []
    since = _moment(text["since"], "since", problems, end_of_day=False)
    until = _moment(text["until"], "until", problems, end_of_day=True)
    return AuditFilters(text["actor"], text["action"], text["target"], since, until, problems)


def _moment(value: str, name: str, problems: list[str], *, end_of_day: bool) -> datetime | None:
    """A date (``2026-12-01``: the whole day) or a date and time, read as UTC."""
    if not value:
        return None
    try:
        moment = parse_datetime(value)
        day = None if moment else parse_date(value)
    except ValueError:
        moment = day = None
    if day is not None:
        moment = datetime.combine(day, time.max if end_of_day else time.min)
    if moment is None:
        problems.append(f"'{value}' is not a time for '{name}': use 2026-12-01 or 2026-12-01T17:30")
        return None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def audit_records(filters: AuditFilters) -> QuerySet[AuditRecord]:
    records = AuditRecord.objects.select_related("actor").order_by("-at", "-id")
    if filters.actor:
        records = records.filter(Q(actor__username__icontains=filters.actor) | Q(actor_label__icontains=filters.actor))
    if filters.action:
        records = records.filter(action__startswith=filters.action)
    if filters.target:
        records = records.filter(_target_match(filters.target))
    if filters.since:
        records = records.filter(at__gte=filters.since)
    if filters.until:
        records = records.filter(at__lte=filters.until)
    return records


def _target_match(target: str) -> Q:
    """A target by its id or a 6+ character prefix; a quota or flag also by its user's id."""
    prefix = search_parse(target).id_prefix or target
    return (
        Q(target_id__startswith=prefix) | Q(after__user_id__startswith=prefix) | Q(before__user_id__startswith=prefix)
    )


def audit_actions() -> list[str]:
    return list(AuditRecord.objects.order_by("action").values_list("action", flat=True).distinct())


# --- readable rows -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    name: str
    old: str
    new: str


@dataclass(frozen=True)
class Target:
    """What a record is about, as a reader names it: ``kind`` picks the link (``user``, ``session``,
    ``machine``, ``project``, or ``""`` for none), ``ident`` is its id and ``text`` the words around it."""

    kind: str
    ident: str
    text: str

    @property
    def url(self) -> str:
        if self.kind == "user":
            return reverse("dashboard:user", args=[self.ident])
        if self.kind == "session":
            return reverse("dashboard:session", args=[self.ident])
        if self.kind == "machine":
            return f"{reverse('dashboard:sessions')}?q={self.ident}"
        if self.kind == "webhook":
            return reverse("dashboard:webhook", args=[self.ident])
        return ""


@dataclass(frozen=True)
class AuditRow:
    record: AuditRecord
    target: Target
    shape: str  # "created", "deleted" or "changed"
    changes: list[Change]
    reason: str


def audit_rows(records: Iterable[AuditRecord]) -> list[AuditRow]:
    records = list(records)
    projects = _project_names(records)
    return [_row(record, projects) for record in records]


def _row(record: AuditRecord, projects: Mapping[str, str]) -> AuditRow:
    before, after = dict(record.before or {}), dict(record.after or {})
    reason = str(after.pop("reason", "") or "")  # the operator's why: shown on its own, not as a change
    shape = "created" if before == {} and after else "deleted" if after == {} and before else "changed"
    return AuditRow(record, audit_target(record, projects), shape, field_changes(before, after), reason)


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Only the fields whose values differ, old → new (a missing field reads "(none)"), in a stable order."""
    names = [*before, *(name for name in after if name not in before)]
    return [
        Change(name, _text(before.get(name)), _text(after.get(name)))
        for name in names
        if before.get(name) != after.get(name)
    ]


def _text(value: Any) -> str:
    if value is None or value == "":
        return NOTHING
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {item}" for key, item in value.items()) or NOTHING
    return str(value)


def audit_target(record: AuditRecord, projects: Mapping[str, str] | None = None) -> Target:
    """Name the target: a quota or flag by its user (or "default quota", a project), a session, a machine."""
    kind, ident = record.target_type, record.target_id
    subject = (record.after or {}).get("user_id") or (record.before or {}).get("user_id")
    if kind == QUOTA:
        return Target("user", subject, "quota of user") if subject else Target("", "", "default quota")
    if kind == FLAG:
        return _flag_target(record, subject)
    if kind == PROJECT:
        name = (projects or {}).get(ident, ident)
        return Target("project", name, "project")
    if kind == WEBHOOK:
        return Target("webhook", ident, "webhook endpoint")
    if kind in ("user", SESSION, MACHINE):
        return Target({SESSION: "session", MACHINE: "machine"}.get(kind, kind), ident, kind.rsplit(".", 1)[-1])
    return Target("", ident, kind)


def _flag_target(record: AuditRecord, user_id: str | None) -> Target:
    values = record.after or record.before or {}
    if user_id:
        return Target("user", user_id, "preview flag of user")
    if values.get("project_id"):
        return Target("project", str(values["project_id"]), "preview flag of project")
    return Target("", "", "preview flag for everyone")


def _project_names(records: list[AuditRecord]) -> dict[str, str]:
    ids = [r.target_id for r in records if r.target_type == PROJECT and _is_uuid(r.target_id)]
    return {str(pk): name for pk, name in Project.objects.filter(id__in=ids).values_list("id", "project_id")}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
