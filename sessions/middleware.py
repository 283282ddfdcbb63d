"""Wildcard preview hosts: ``<session id>.<PREVIEW_HOST_SUFFIX>`` is answered by the preview route, any path."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from sessions.views import preview_replay


class PreviewHostMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session_id = _preview_session(request)
        if session_id is None:
            return self.get_response(request)
        return preview_replay(request, session_id, path=request.path.lstrip("/"))


def _preview_session(request: HttpRequest) -> uuid.UUID | None:
    suffix = settings.PREVIEW_HOST_SUFFIX
    if not suffix:
        return None
    host = request.get_host().split(":")[0].lower()
    label, _, rest = host.partition(".")
    if rest != suffix:
        return None
    try:
        return uuid.UUID(label)
    except ValueError:
        return None
