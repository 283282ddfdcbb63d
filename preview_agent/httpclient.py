"""A minimal HTTP/1.1 client for the orchestrator's small JSON API.

Why not httpx (which the realtime client already imports)? Instantiating an httpx client pulls in
its connection pool and anyio backend, about 3.7 MB of resident memory for a handful of requests
a minute; this is one request per connection, ``Connection: close``, and a few dozen lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from functools import cache
from typing import Any
from urllib.parse import urlencode, urlsplit

MAX_RESPONSE_BYTES = 1024 * 1024


class HttpError(Exception):
    """The request did not produce a response (connection, timeout, malformed reply)."""


@cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


async def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    body: Any = None,
    params: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    try:
        return await asyncio.wait_for(_exchange(method, url, headers, body, params), timeout)
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as error:
        raise HttpError(type(error).__name__) from error


async def _exchange(
    method: str, url: str, headers: dict[str, str], body: Any, params: dict[str, Any] | None
) -> tuple[int, bytes]:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    host = parts.hostname or ""
    reader, writer = await asyncio.open_connection(host, port, ssl=_tls() if secure else None)
    try:
        target = (parts.path or "/") + ("?" + urlencode(params) if params else "")
        data = b"" if body is None else json.dumps(body).encode()
        head = {"Host": parts.netloc, "Connection": "close", "Accept": "application/json", **headers}
        if body is not None:
            head |= {"Content-Type": "application/json", "Content-Length": str(len(data))}
        lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()
        return _parse_response(await _read_to_end(reader))
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _read_to_end(reader: asyncio.StreamReader) -> bytes:
    """``Connection: close``: the response ends where the connection does."""
    raw = bytearray()
    while chunk := await reader.read(65536):
        raw += chunk
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ValueError("response too large")
    return bytes(raw)


def _parse_response(raw: bytes) -> tuple[int, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    if any(line.lower().replace(" ", "") == "transfer-encoding:chunked" for line in lines[1:]):
        body = _dechunk(body)
    return status, body


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)
