"""Preview hosts (``<session id>.<PREVIEW_HOST_SUFFIX>``) reach the preview route and nothing else."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from sessions.views import preview_not_found, preview_replay
from velocity.preview_hosts import is_preview_host, normalize_host, preview_session_id


class PreviewHostMiddleware:
    """Early in the chain, so no view, static file or admin page of the orchestrator ever answers on a
    preview host: a preview's scripts are strangers' code, and every path there is the preview's own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # get_host() validates against ALLOWED_HOSTS; the normalized form also catches "host." and "HOST".
        host = normalize_host(request.get_host())
        if not is_preview_host(host):
            return self.get_response(request)
        session_id = preview_session_id(host)
        if session_id is None:
            return preview_not_found(request)
        return preview_replay(request, session_id, path=request.path.lstrip("/"), on_preview_host=True)
