"""The API's reference point: the same list query answered by a bare Django view, ``values()`` as JSON.

Mounted only in the benchmark's own web server (``DJANGO_SETTINGS_MODULE=bench.reference_settings``:
``velocity.settings`` with this module as the URLconf), never in the product's URLs. No token, no DRF, no
throttles, no pagination classes: the count and the first page of a user's sessions, newest first, as
``SessionListCreateApi`` queries them. Our list's requests per second over this view's is what the REST
layer costs on top of the ORM.
"""

from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, JsonResponse
from django.urls import path

from bench.api import REFERENCE_PATH
from sessions.models import PreviewSession
from sessions.session_json import FIELDS
from velocity.urls import urlpatterns as product_urlpatterns

PAGE = 50


def reference_sessions(request: HttpRequest) -> JsonResponse:
    """``?user_id=``: that user's session count and first page, straight from ``values()``."""
    try:
        user = uuid.UUID(request.GET.get("user_id", ""))
    except ValueError:
        return JsonResponse({"error": "user_id must be a UUID"}, status=400)
    sessions = PreviewSession.objects.filter(user_id=user).order_by("-created_at", "-id")
    rows = list(sessions.values(*FIELDS)[:PAGE])
    return JsonResponse({"count": sessions.count(), "results": rows}, encoder=DjangoJSONEncoder)


urlpatterns = [path(REFERENCE_PATH, reference_sessions), *product_urlpatterns]
