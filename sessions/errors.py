"""One error shape for every API failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

DEFAULT_CODES = {
    status.HTTP_400_BAD_REQUEST: "request.invalid",
    status.HTTP_401_UNAUTHORIZED: "auth.required",
    status.HTTP_403_FORBIDDEN: "auth.forbidden",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "request.method_not_allowed",
    status.HTTP_406_NOT_ACCEPTABLE: "request.not_acceptable",
    status.HTTP_409_CONFLICT: "conflict",
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: "request.too_large",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "request.unsupported_media_type",
    status.HTTP_429_TOO_MANY_REQUESTS: "rate_limited",
    status.HTTP_500_INTERNAL_SERVER_ERROR: "internal_error",
    status.HTTP_503_SERVICE_UNAVAILABLE: "unavailable",
}


class ApiError(exceptions.APIException):
    """A domain refusal with its own code, status and details (quota, conflicts, provider outages)."""

    def __init__(self, *, status_code: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.details = details or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _describe(exc: exceptions.APIException, status_code: int) -> tuple[str, str, dict[str, Any]]:
    if isinstance(exc, ApiError):
        return exc.error_code, str(exc.detail), exc.details
    if isinstance(exc, exceptions.ValidationError):
        return "request.invalid", "the request is not valid", {"fields": exc.detail}
    code = exc.get_codes()
    code = code if isinstance(code, str) and "." in code else DEFAULT_CODES.get(status_code, "error")
    details: dict[str, Any] = {}
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        details["retry_after"] = int(wait) + 1
    return code, str(exc.detail), details


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("not found")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    code, message, details = _describe(exc, response.status_code)
    response.data = error_body(code, message, details)
    return response


@csrf_exempt  # an unknown URL is a 404 whatever the method: bearer tokens, no cookies, nothing to forge
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Unknown URLs under ``/api/`` answer JSON in the same shape, not Django's HTML page."""
    return JsonResponse(error_body("not_found", "no such endpoint"), status=404)
