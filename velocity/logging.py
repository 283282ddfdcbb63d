"""Log formatting: JSON lines in production, readable lines in development, and no secrets in either.

Context travels in ``extra=``; both formatters print every extra field. A scrubber masks anything that
looks like a JWT, a bearer token or a credential query parameter, whichever field it ends up in.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from velocity import http_stats, metrics

logger = logging.getLogger("velocity.request")

_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_SECRET_PATTERNS = [
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),  # JWTs
    re.compile(r"(?i)(bearer|flyv1)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:apikey|token|access_token|password|secret|key)=)[^&\s\"']+"),
]
_SECRET_KEYS = re.compile(r"(?i)(token|secret|password|apikey|authorization|api_key|jwt)")


def scrub(text: str) -> str:
    """Mask credentials in free text."""
    text = _SECRET_PATTERNS[0].sub("[redacted-jwt]", text)
    text = _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)} [redacted]", text)
    return _SECRET_PATTERNS[2].sub(lambda m: f"{m.group(1)}[redacted]", text)


def _clean(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return "[redacted]"
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return scrub(str(value))


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: _clean(k, v) for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        entry.update(record_extras(record))
        if record.exc_info:
            entry["exc_info"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
        extras = " ".join(f"{k}={v}" for k, v in record_extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {scrub(record.getMessage())} {extras}".rstrip()
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        return line


class RequestLogMiddleware:
    """One log line per HTTP request: method, path (never the query string), status and duration.

    The same measurement feeds the request-duration and error metrics, labelled by route pattern.
    """

    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response: HttpResponse = self.get_response(request)
        self._log(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response: HttpResponse = await self.get_response(request)
        self._log(request, response, started)
        return response

    @staticmethod
    def _log(request: HttpRequest, response: HttpResponse, started: float) -> None:
        seconds = time.perf_counter() - started
        metrics.http_request_observed(request, response, seconds)
        duration_ms = round(seconds * 1000, 2)
        http_stats.record(request.path, response.status_code, duration_ms, route=metrics.route_of(request))
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        logger.log(
            level,
            "http request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "pid": os.getpid(),  # which web process served it, when several do (WEB_CONCURRENCY)
            },
        )
