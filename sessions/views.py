"""HTML views: the preview route that hands requests to the session's machine."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt

from machines.models import MachineState, Provider
from machines.services import machine_replay_header
from sessions.models import PreviewSession
from sessions.selectors import session_for_preview

STARTING_RETRY_SECONDS = 2


@csrf_exempt  # the request is replayed to the preview, never handled here
@xframe_options_exempt  # the editor shows these pages inside its preview frame
def preview_replay(
    request: HttpRequest, session_id: uuid.UUID, path: str = "", *, on_preview_host: bool
) -> HttpResponse:
    """Send the request to the session's machine, or say plainly why not.

    A Fly machine gets an empty answer carrying ``fly-replay: app=…;instance=…``: Fly's proxy then
    replays the request to that machine, so preview traffic never flows through the orchestrator
    (websocket handshakes go to daphne's websocket side instead: a known gap, docs/machines.md).
    That answer is given only on the preview's own host: anywhere else the preview's scripts would
    share an origin with the orchestrator. A local machine is a redirect to its loopback address.
    An unknown session is a 404 page, an ended one a 410 page, one still booting a 503 that retries.
    """
    session = session_for_preview(session_id)
    if session is None:
        return preview_not_found(request)
    if not session.is_live:
        return _page(request, 410, "This preview has ended", _ended_reason(session))
    machine = session.machine
    if machine is None or machine.state != MachineState.STARTED or not machine.provider_machine_id:
        response = _page(request, 503, "Starting preview…", "The preview machine is starting; this page retries.")
        response["Retry-After"] = str(STARTING_RETRY_SECONDS)
        return response
    if Provider(machine.provider).reached_directly:
        query = request.META.get("QUERY_STRING", "")
        return HttpResponseRedirect(f"{machine.address}/{path}" + (f"?{query}" if query else ""))
    if not on_preview_host:
        return preview_on_its_own_host(request, session_id)
    response = HttpResponse(b"", content_type="text/plain")
    response["fly-replay"] = machine_replay_header(machine)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@xframe_options_exempt
def preview_by_path(request: HttpRequest, session_id: uuid.UUID, path: str = "") -> HttpResponse:
    """``/preview/<session>/`` on the orchestrator's host: local machines only (a redirect to their port)."""
    if Provider(settings.MACHINE_PROVIDER).previews_by_replay:
        return preview_on_its_own_host(request, session_id)
    return preview_replay(request, session_id, path=path, on_preview_host=False)


def preview_on_its_own_host(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    """404: a Fly preview is served only on ``<session>.<PREVIEW_HOST_SUFFIX>``, never by path here."""
    suffix = settings.PREVIEW_HOST_SUFFIX
    where = f"https://{session_id}.{suffix}/" if suffix else "its own host"
    message = f"Previews are served on their own host, not on this address. This one lives at {where}."
    return _page(request, 404, "This preview lives on its own host", message)


def preview_not_found(request: HttpRequest) -> HttpResponse:
    return _page(request, 404, "No such preview", "This preview link does not match any session.")


def _ended_reason(session: PreviewSession) -> str:
    reason = session.get_end_reason_display() if session.end_reason else "ended"
    return f"The session ended ({reason}). Start a new preview from the editor."


def _page(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    response = render(request, "sessions/preview_unavailable.html", {"title": title, "message": message}, status=status)
    response["Cache-Control"] = "no-store"
    return response
