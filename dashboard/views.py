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
from django.views.decorators.http import require_http_methods

from dashboard import audit_log, charts, playground, selectors, services
from machines import selectors as machine_selectors
from machines import services as machine_services
from machines.models import Machine, MachineState
from machines.pricing import CENT
from realtime_bridge import metrics as realtime_metrics
from sessions.models import LIVE_STATUSES, SessionStatus
from sessions.selectors import session_deadlines
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
    sessions = selectors.session_search(
        status=filters["status"], user=filters["user"], project=filters["project"], query=filters["q"]
    )
    page = Paginator(sessions, selectors.PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"nav": "sessions", "page": page, "filters": filters, "statuses": SessionStatus.choices}
    return _page(request, "dashboard/session_list.html", context, ["session_rows"])


@staff_member_required
def session_detail(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    session = selectors.session_for_operator(session_id)
    if session is None:
        raise Http404("no such session")
    context = {
        "nav": "sessions",
        "session": session,
        "events": selectors.session_machine_events(session),
        "waterfall": selectors.session_waterfall(session),
        "deadlines": session_deadlines(session, idle_timeout=settings.PREVIEW_INACTIVITY_TIMEOUT),
        "audit": audit_log.records_for(session, session.machine),
        "drift_findings": selectors.session_drift_findings(session),
    }
    return _page(request, "dashboard/session_detail.html", context, ["session_state", "session_timeline"])


@staff_member_required
@require_http_methods(["GET", "POST"])
def session_end(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    session = selectors.session_for_operator(session_id)
    if session is None:
        raise Http404("no such session")
    if request.method == "GET":
        return render(request, "dashboard/confirm.html", {"nav": "sessions", "action": "end", "session": session})
    if services.session_end_by_operator(session=session, operator=request.user, now=timezone.now()):
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
    machine = Machine.objects.filter(id=machine_id).first()
    if machine is None:
        raise Http404("no such machine")
    if request.method == "GET":
        return render(request, "dashboard/confirm.html", {"nav": "machines", "action": "kill", "machine": machine})
    if machine_services.machine_kill(machine_id=machine.id, actor=request.user, now=timezone.now()):
        messages.success(request, "Machine killed.")
    else:
        messages.info(request, "The machine was already gone.")
    return redirect("dashboard:machines")


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
    }
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
    context = {"nav": "audit", "records": audit_log.recent()}
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
