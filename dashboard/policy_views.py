"""The policy dry-run page: what a tighter idle timeout, TTL or concurrency limit would have changed over the
last days, and applying one (a separate, confirmed and audited action). Staff only, like every page."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from dashboard import charts
from dashboard.forms import PolicyForm, ReasonForm
from sessions.dry_run import DryRunResult
from sessions.policy_selectors import live_policy, live_sessions_idle_for, policy_dry_run
from sessions.services import policy_apply as policy_apply_service

LISTED_STOPS = 20


@staff_member_required
def policy_page(request: HttpRequest) -> HttpResponse:
    live = live_policy()
    bound = any(name in request.GET for name in PolicyForm.base_fields)
    form = PolicyForm(request.GET if bound else None, initial={"days": 30})
    result = policy_dry_run(form.policy(), now=timezone.now(), days=form.window_days()) if form.is_valid() else None
    context = {"nav": "policy", "live": live, "form": form, "result": result, **_result_context(result)}
    context["retention_days"] = settings.SESSION_ACTIVITY_RETENTION_DAYS
    return render(request, "dashboard/policy.html", context, status=400 if bound and not form.is_valid() else 200)


def _result_context(result: DryRunResult | None) -> dict[str, object]:
    if result is None:
        return {}
    days = result.per_day()
    chart = charts.bar_chart(
        [float(day.dollars_saved) for day in days], [day.day.strftime("%b %d") for day in days], unit="$", min_top=0.01
    )
    wrong = result.sessions_edited_after_stop
    share = round(100 * wrong / result.sessions_ended_earlier) if result.sessions_ended_earlier else 0
    return {"chart": chart, "days": days, "stops": result.largest_stops(LISTED_STOPS), "wrong_share": share}


@staff_member_required
@require_http_methods(["GET", "POST"])
def policy_apply(request: HttpRequest) -> HttpResponse:
    """GET: confirm (the rules before and after, what ends at the next sweep); POST: apply, audited."""
    form = PolicyForm(request.GET if request.method == "GET" else request.POST)
    if not form.is_valid():
        messages.error(
            request, "Nothing applied: " + " ".join(str(e) for errors in form.errors.values() for e in errors)
        )
        return redirect(_page_url(request.GET if request.method == "GET" else request.POST))
    reason = ReasonForm(request.POST if request.method == "POST" else None)
    if request.method == "GET" or not reason.is_valid():
        return render(request, "dashboard/policy_confirm.html", _confirm_context(form, reason), status=200)
    before, after = policy_apply_service(
        policy=form.policy(), actor=request.user, reason=reason.cleaned_data["reason"].strip()
    )
    messages.success(
        request,
        f"Policy applied: idle timeout {after.idle_timeout_minutes} min, TTL {after.ttl_minutes} min, "
        f"{after.max_concurrent} session(s) at once per user (was {before.idle_timeout_minutes} / "
        f"{before.ttl_minutes} / {before.max_concurrent}).",
    )
    return redirect(_page_url(form.cleaned_data))


def _confirm_context(form: PolicyForm, reason: ReasonForm) -> dict[str, object]:
    live = live_policy()
    after = live.with_policy(form.policy())
    idle = form.policy().idle_timeout_minutes
    ending = live_sessions_idle_for(idle, now=timezone.now()) if idle is not None else 0
    return {"nav": "policy", "before": live, "after": after, "policy_form": form, "form": reason, "ending": ending}


def _page_url(values: object) -> str:
    names = ("idle_timeout_minutes", "ttl_minutes", "max_concurrent", "days")
    query = {name: values.get(name) for name in names if values.get(name) not in (None, "")}  # type: ignore[attr-defined]
    return f"{reverse('dashboard:policy')}?{urlencode(query)}" if query else reverse("dashboard:policy")
