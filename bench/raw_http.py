"""A lean HTTP/1.1 load client: keep-alive connections on asyncio streams, one request in flight on each.

The load's clients share the two cores with the server they measure, so their own CPU per request is taken from
the server. httpx's ``AsyncClient`` spends about a millisecond of CPU on each request (building, sending and
parsing through its layers); this client writes a pre-built request and reads the status line, the headers
and ``Content-Length`` bytes of body, a few tens of microseconds. It speaks only what the benchmark needs: GET,
``Content-Length`` bodies (no chunked encoding), no redirects, no TLS.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

HEADER_END = b"\r\n\r\n"


class ResponseError(Exception):
    pass


def build_get(url: str, headers: dict[str, str]) -> tuple[str, int, bytes]:
    """Host, port and the bytes of a keep-alive GET of ``url`` with ``headers``."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return parts.hostname or "127.0.0.1", parts.port or 80, "\r\n".join(lines).encode("latin-1")


def content_length(head: bytes) -> int:
    """The status must be 200 and the body's length declared."""
    status_line, _, rest = head.partition(b"\r\n")
    if status_line.split(b" ", 2)[1] != b"200":
        raise ResponseError(status_line.decode("latin-1"))
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ResponseError("no Content-Length")


async def _connection(host: str, port: int, request: bytes, deadline: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(HEADER_END)
            await reader.readexactly(content_length(head))
            latencies.append(time.perf_counter() - began)
    finally:
        writer.close()


async def load(url: str, headers: dict[str, str], seconds: float, connections: int) -> list[float]:
    """``connections`` clients GET ``url`` back to back for ``seconds``; the seconds each answer took."""
    host, port, request = build_get(url, headers)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(_connection(host, port, request, deadline, latencies) for _ in range(connections)))
    return latencies
