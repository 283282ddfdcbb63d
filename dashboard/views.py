"""HTML views of the operator dashboard. Staff only; each page also answers ``?format=json`` with its live
regions re-rendered, which the page's script swaps in when an ops event arrives (or, while the socket
is down, every few seconds)."""

from __future__ import annotations

import csv
import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from dashboard import audit_log, charts, playground, selectors, services, users
from dashboard.forms import QuotaForm, ReasonForm
from dashboard.search import MIN_PREFIX, search_parse
from machines import selectors as machine_selectors
from machines import services as machine_services
from machines.models import MachineState
from machines.pricing import CENT
from machines.services.pool_target import PoolReport, pool_report
from realtime_bridge import metrics as realtime_metrics
from sessions.models import LIVE_STATUSES, Quota, SessionStatus
from sessions.policy_selectors import idle_timeout_seconds
from sessions.selectors import session_deadlines, user_block_for
from velocity import http_stats


def _page(request: HttpRequest, template: str, context: dict[str, Any], regions: list[str]) -> HttpResponse:
    """The full page, or with ``?format=json`` just its live regions (the status fallback)."""
    if request.GET.get("format") == "json":
        rendered = {
            name: render_to_string(f"dashboard/regions/{name}.html", context, request=request) for name in regions
        }
        return JsonResponse(
            {"at": timezone.now().isoformat(), "numbers": context.get("numbers", {}), "regions": rendered}
        )
    return render(request, template, context)


@staff_member_required
def overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    activity = selectors.machine_activity_per_minute(now=now)
    context = {
        "nav": "overview",
        "sessions": selectors.session_counts(now=now),
        "machines": selectors.machine_counts(now=now),
        "activity_totals": {name: sum(counts) for name, counts in activity.items()},
        "activity_chart": charts.line_chart({k: [float(v) for v in vs] for k, vs in activity.items()}, width=560),
        "realtime": _realtime_numbers(),
        "api": http_stats.api_stats(),
        "cost": selectors.cost_summary(now=now),
        "top_users": selectors.user_costs(now=now)[:5],
        "drift": machine_selectors.reconcile_latest(),
        "findings": selectors.drift_findings_recent(now=now),
        "health": selectors.ops_health(now=now),
        "routes": http_stats.route_stats(),
        "live_sessions": selectors.session_search().filter(status__in=LIVE_STATUSES)[:20],
        **_pool(now),
    }
    context["numbers"] = _overview_numbers(context)
    regions = ["overview_health", "overview_numbers", "overview_sessions"]
    return _page(request, "dashboard/overview.html", context, regions)


def _overview_numbers(context: dict[str, Any]) -> dict[str, Any]:
    """The overview's figures as data, for scripts and monitors reading the JSON status."""
    cost, api = context["cost"], context["api"]
    return {
        "sessions": context["sessions"],
        "machines": context["machines"],
        "cost_usd": {
            "today": str(cost.today.quantize(CENT)),
            "month_to_date": str(cost.month_to_date.quantize(CENT)),
            "projected_month": str(cost.projected_month.quantize(CENT)),
        },
        "api": {"requests": api.requests, "error_rate": api.error_rate, "p50_ms": api.p50_ms, "p95_ms": api.p95_ms},
        "realtime_messages_per_second": context["realtime"]["total_per_second"],
        "realtime_connections": context["realtime"]["sockets"],
        **_health_numbers(context["health"]),
        "warm_pool": _pool_numbers(context["pool"]),
    }


def _pool(now: Any) -> dict[str, Any]:
    """The warm pool's report, or why it cannot be computed (a malformed setting; velocity.E012 names it)."""
    try:
        return {"pool": pool_report(now=now, memory_mb=settings.PREVIEW_MACHINE_MEMORY_MB), "pool_error": ""}
    except ValueError as exc:
        return {"pool": None, "pool_error": str(exc)}


def _pool_numbers(pool: PoolReport | None) -> dict[str, Any] | None:
    if pool is None:
        return None
    return {
        "size": pool.size,
        "ready": pool.ready,
        "suspended": pool.suspended,
        "target": pool.target.size,
        "target_reason": pool.target.reason,
        "hit_rate": pool.hit_rate,
        "usd_per_hour": str(pool.hourly_cost.quantize(CENT)),
    }


def _health_numbers(health: selectors.OpsHealth) -> dict[str, Any]:
    cluster, queue, provider = health.cluster, health.queue, health.provider_health
    return {
        "worker": {
            "alive": cluster.alive,
            "workers": cluster.workers,
            "heartbeat_age_s": cluster.heartbeat_age,
        },
        "queue": {
            "queued": queue.queued,
            "oldest_age_s": queue.oldest_age,
            "failures_last_hour": queue.failures_last_hour,
        },
        "stuck_creating": health.stuck_creating_count,
        "provider": {
            "kind": health.provider,
            "last_ok_at": provider.last_ok_at.isoformat() if provider and provider.last_ok_at else None,
            "last_failure_at": provider.last_failure_at.isoformat() if provider and provider.last_failure_at else None,
            "failing": bool(provider and provider.failing),
        },
    }


def _realtime_numbers() -> dict[str, Any]:
    snapshot = realtime_metrics.snapshot()
    return {**snapshot, "total_per_second": round(sum(snapshot["messages_per_second"].values()), 2)}


@staff_member_required
def session_list(request: HttpRequest) -> HttpResponse:
    filters = {name: request.GET.get(name, "").strip() for name in ("status", "user", "project", "q")}
    terms = search_parse(filters["q"])
    jump = selectors.search_jump(terms) if request.GET.get("format") != "json" else None
    if jump is not None:
        kind, ident = jump
        return redirect(f"dashboard:{kind}", ident)
    sessions = selectors.session_search(
        status=filters["status"], user=filters["user"], project=filters["project"], query=filters["q"]
    )
    page = Paginator(sessions, selectors.PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "nav": "sessions",
        "page": page,
        "filters": filters,
        "statuses": SessionStatus.choices,
        "problems": [p for p in (terms.problem, _user_filter_problem(filters["user"])) if p],
        "matching_users": selectors.users_matching(terms),
    }
    return _page(request, "dashboard/session_list.html", context, ["session_rows"])


def _user_filter_problem(user: str) -> str:
    terms = search_parse(user)
    if not user or terms.id_prefix:
        return ""
    return terms.problem or f"'{user}' is not a user id: type at least {MIN_PREFIX} characters of one"


@staff_member_required
def session_detail(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    session = selectors.session_for_operator(session_id)
    if session is None:
        raise Http404("no such session")
    now = timezone.now()
    agent = selectors.session_agent_records(session, now=now)
    context = {
        "nav": "sessions",
        "session": session,
        "budget": selectors.session_budget(session, now=now),
        "events": selectors.session_machine_events(session),
        "waterfall": selectors.session_waterfall(session),
        "liveness": selectors.session_agent(session),
        "deadlines": session_deadlines(session, idle_timeout=idle_timeout_seconds()),
        "audit": audit_log.audit_rows(audit_log.records_for(session, session.machine)),
        "user_block": user_block_for(session.user_id),
        "drift_findings": selectors.session_drift_findings(session),
        "agent": agent,
        "numbers": {"sync_backlog": _backlog_numbers(agent)},
    }
    regions = ["session_state", "session_sync_backlog", "session_timeline"]
    return _page(request, "dashboard/session_detail.html", context, regions)


def _backlog_numbers(agent: selectors.AgentRecords) -> dict[str, Any]:
    oldest = agent.backlog.oldest_at
    return {
        "count": agent.backlog.count,
        "oldest_at": oldest.isoformat() if oldest else None,
        "seconds": agent.backlog_seconds,
    }


@staff_member_required
@require_http_methods(["GET", "POST"])
def session_end(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    session = selectors.session_for_operator(session_id)
    if session is None:
        raise Http404("no such session")
    form = ReasonForm(request.POST if request.method == "POST" else None)
    if request.method == "GET" or not form.is_valid():
        context = {"nav": "sessions", "action": "end", "session": session, "form": form}
        return render(request, "dashboard/confirm.html", context, status=200 if request.method == "GET" else 400)
    reason = form.cleaned_data["reason"]
    if services.session_end_by_operator(session=session, operator=request.user, now=timezone.now(), reason=reason):
        messages.success(request, "Session ended.")
    else:
        messages.info(request, "The session had already finished.")
    return redirect("dashboard:session", session_id=session.id)


@staff_member_required
def machine_list(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "live")
    machines = Paginator(selectors.machine_list(state=state if state != "all" else ""), selectors.PAGE_SIZE)
    page = machines.get_page(request.GET.get("page"))
    rows = selectors.machine_rows(page.object_list, now=timezone.now())
    context = {"nav": "machines", "page": page, "rows": rows, "state": state, "states": MachineState.choices}
    return _page(request, "dashboard/machine_list.html", context, ["machine_rows"])


@staff_member_required
@require_http_methods(["GET", "POST"])
def machine_kill(request: HttpRequest, machine_id: uuid.UUID) -> HttpResponse:
    target = selectors.machine_for_kill(machine_id, now=timezone.now())
    if target is None:
        raise Http404("no such machine")
    form = ReasonForm(request.POST if request.method == "POST" else None)
    if request.method == "GET" or not form.is_valid():
        context = {"nav": "machines", "action": "kill", "machine": target.machine, "target": target, "form": form}
        return render(request, "dashboard/confirm.html", context, status=200 if request.method == "GET" else 400)
    reason = form.cleaned_data["reason"]
    if machine_services.machine_kill(machine_id=machine_id, actor=request.user, now=timezone.now(), reason=reason):
        messages.success(request, "Machine killed.")
    else:
        messages.info(request, "The machine was already gone.")
    return redirect("dashboard:machines")


# --- a user's page and the actions on a user ------------------------------------------------------------


@staff_member_required
def user_detail(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    return _user_page(request, user_id)


def _user_page(request: HttpRequest, user_id: uuid.UUID, form: QuotaForm | None = None) -> HttpResponse:
    page = users.user_page(user_id, now=timezone.now(), memory_mb=settings.PREVIEW_MACHINE_MEMORY_MB)
    limits = {name: getattr(page.quota, name) for name in QuotaForm.Meta.fields}
    context = {
        "nav": "sessions",
        "user": page,
        "known": users.user_known(user_id),
        "quota_form": form or QuotaForm(initial=limits),
        "rows": audit_log.audit_rows(page.records),
    }
    response = _page(request, "dashboard/user_detail.html", context, ["user_live"])
    if form is not None:
        response.status_code = 400
    return response


@staff_member_required
@require_POST
def user_quota(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    """Save the user's limits as their override (the first save creates it): one audit record."""
    override = Quota.objects.filter(user_id=user_id).first() or Quota(user_id=user_id)
    form = QuotaForm(request.POST, instance=override)
    if not form.is_valid():
        return _user_page(request, user_id, form)
    if override.pk is not None and not form.has_changed():
        messages.info(request, "Nothing changed: the quota is as it was.")
    else:
        services.quota_set_by_operator(user_id=user_id, values=form.values(), operator=request.user)
        messages.success(request, "Quota saved: this user now has their own limits.")
    return redirect("dashboard:user", user_id=user_id)


@staff_member_required
@require_POST
def user_quota_reset(request: HttpRequest, user_id: uuid.UUID) -> HttpResponse:
    if services.quota_reset_by_operator(user_id=user_id, operator=request.user):
        messages.success(request, "Override deleted: the default quota applies to this user again.")
    else:
        messages.info(request, "This user had no override: the default quota already applies.")
    return redirect("dashboard:user", user_id=user_id)


USER_ACTIONS = {
    "stop": "End all live sessions and block new ones",
    "end-all": "End all live sessions",
    "block": "Block new sessions",
    "unblock": "Unblock new sessions",
}


@staff_member_required
@require_http_methods(["GET", "POST"])
def user_action(request: HttpRequest, user_id: uuid.UUID, action: str) -> HttpResponse:
    """Confirm (GET, with a reason box) and run (POST) one action on a user."""
    if action not in USER_ACTIONS:
        raise Http404("no such action")
    form = ReasonForm(request.POST if request.method == "POST" else None)
    if request.method == "GET" or not form.is_valid():
        live = users.user_live_sessions(user_id, now=timezone.now())
        context = {"nav": "sessions", "action": action, "title": USER_ACTIONS[action], "user_id": user_id}
        context |= {"live": live, "form": form, "block": user_block_for(user_id)}
        return render(request, "dashboard/user_confirm.html", context, status=200 if request.method == "GET" else 400)
    messages.success(request, _run_user_action(action, user_id, request.user, form.cleaned_data["reason"]))
    return redirect("dashboard:user", user_id=user_id)


def _run_user_action(action: str, user_id: uuid.UUID, operator: Any, reason: str) -> str:
    """Run it and say what happened, in the words of the message shown after."""
    now = timezone.now()
    if action == "stop":
        _, ended = services.user_stop_by_operator(user_id=user_id, operator=operator, now=now, reason=reason)
        return f"New sessions blocked; {_sessions(ended)} ended."
    if action == "end-all":
        ended = services.user_sessions_end_all(user_id=user_id, operator=operator, now=now, reason=reason)
        return f"{_sessions(ended).capitalize()} ended."
    if action == "block":
        blocked = services.user_block_by_operator(user_id=user_id, operator=operator, now=now, reason=reason)
        return "New sessions blocked." if blocked else "New sessions were already blocked."
    unblocked = services.user_unblock_by_operator(user_id=user_id, operator=operator, reason=reason)
    return "New sessions allowed again." if unblocked else "New sessions were not blocked."


def _sessions(count: int) -> str:
    return "1 live session" if count == 1 else f"{count} live sessions"


@staff_member_required
def costs(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    days = [(day, totals.cost) for day, totals in machine_selectors.cost_daily(now=now)]
    chart = charts.bar_chart(
        [float(cost) for _, cost in days], [day.strftime("%b %d") for day, _ in days], unit="$", min_top=0.01
    )
    context = {
        "nav": "costs",
        "days": days,
        "chart": chart,
        "users": selectors.user_costs(now=now),
        "summary": selectors.cost_summary(now=now),
        **_pool(now),
    }
    context["pool_month"] = next((row for row in context["users"] if row.user_id is None), None)
    return _page(request, "dashboard/costs.html", context, ["cost_users"])


@staff_member_required
def costs_csv(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="velocity-costs-{now:%Y-%m}.csv"'
    writer = csv.writer(response)
    writer.writerow(["user_id", "cost_usd", "machine_seconds", "budget_usd", "budget_used", "idle_minutes"])
    for row in selectors.user_costs(now=now):
        used = "" if row.budget_used is None else f"{row.budget_used:.4f}"
        writer.writerow(
            [
                row.user_id or "warm-pool",
                f"{row.cost:.4f}",
                int(row.machine_seconds),
                row.budget or "",
                used,
                round(row.idle_seconds / 60, 1),
            ]
        )
    return response


@staff_member_required
def audit(request: HttpRequest) -> HttpResponse:
    filters = audit_log.audit_filters_parse(request.GET)
    page = Paginator(audit_log.audit_records(filters), selectors.PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "nav": "audit",
        "page": page,
        "rows": audit_log.audit_rows(page.object_list),
        "filters": filters,
        "actions": audit_log.audit_actions(),
    }
    return render(request, "dashboard/audit.html", context)


@staff_member_required
def playground_page(request: HttpRequest) -> HttpResponse:
    sample = request.GET.get("sample", "static")
    if sample not in playground.SAMPLES:
        raise Http404("no such sample")
    context = {
        "nav": "playground",
        "config": playground.page_config(request.user, sample),
        "sample": sample,
        "samples": playground.SAMPLES,
    }
    return render(request, "dashboard/playground.html", context)
