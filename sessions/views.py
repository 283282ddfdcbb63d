"""HTML views: the preview route that hands requests to the session's machine."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt

from machines.models import MachineState
from machines.services import machine_replay_header
from sessions.models import PreviewSession
from sessions.selectors import session_for_preview

STARTING_RETRY_SECONDS = 2


@csrf_exempt  # the request is replayed to the preview, never handled here
@xframe_options_exempt  # the editor shows these pages inside its preview frame
def preview_replay(request: HttpRequest, session_id: uuid.UUID, path: str = "", prefix: str = "") -> HttpResponse:
    """Send the request to the session's machine, or say plainly why not.

    A Fly machine gets an empty answer carrying ``fly-replay: app=…;instance=…``: Fly's proxy then
    replays the request (websocket upgrades included) to that machine, so preview traffic never
    flows through the orchestrator. A local machine is a redirect to its loopback address. An
    unknown session is a 404 page, an ended one a 410 page, one still booting a 503 that retries.
    """
    session = session_for_preview(session_id)
    if session is None:
        return _page(request, 404, "No such preview", "This preview link does not match any session.")
    if not session.is_live:
        return _page(request, 410, "This preview has ended", _ended_reason(session))
    machine = session.machine
    if machine is None or machine.state != MachineState.STARTED or not machine.provider_machine_id:
        response = _page(request, 503, "Starting preview…", "The preview machine is starting; this page retries.")
        response["Retry-After"] = str(STARTING_RETRY_SECONDS)
        return response
    if machine.provider == "local":
        query = request.META.get("QUERY_STRING", "")
        return HttpResponseRedirect(f"{machine.address}/{path}" + (f"?{query}" if query else ""))
    response = HttpResponse(b"", content_type="text/plain")
    # ``state`` reaches the machine as ``fly-replay-src``: the path prefix its proxy may strip.
    response["fly-replay"] = machine_replay_header(machine, state=prefix)
    response["Cache-Control"] = "no-store"
    return response


def preview_by_path(request: HttpRequest, session_id: uuid.UUID, path: str = "") -> HttpResponse:
    return preview_replay(request, session_id, path=path, prefix=f"/preview/{session_id}")


def _ended_reason(session: PreviewSession) -> str:
    reason = session.get_end_reason_display() if session.end_reason else "ended"
    return f"The session ended ({reason}). Start a new preview from the editor."


def _page(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    response = render(request, "sessions/preview_unavailable.html", {"title": title, "message": message}, status=status)
    response["Cache-Control"] = "no-store"
    return response
