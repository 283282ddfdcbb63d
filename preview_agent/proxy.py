"""The agent's HTTP surface on ``PORT``: ``/health``, ``/logs``, and everything else proxied.

Plain asyncio, not a web framework: the proxy only rewrites the request head and then pipes bytes
both ways, which carries HTTP bodies, chunked streams and websocket upgrades (hot-module reload)
alike, and keeps the idle agent small. Each proxied request asks the dev server for
``Connection: close``, so one connection carries one request and no body parsing is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from .devserver import DevServer
from .files import FileRefused, check_path, open_inside

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_SECONDS = 30.0
PIPE_CHUNK = 64 * 1024
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding"}
)
REASONS = {
    200: "OK",
    301: "Moved Permanently",
    400: "Bad Request",
    404: "Not Found",
    503: "Service Unavailable",
}
STARTING_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="refresh" content="2"><title>Starting preview…</title>
<style>body{{font:16px system-ui,sans-serif;display:grid;place-items:center;height:90vh;color:#444}}</style>
</head><body><div><h1>Starting preview…</h1><p>Dev server: {state}. This page refreshes itself.</p></div>
</body></html>"""


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key.lower() == name), "")

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    @property
    def is_websocket(self) -> bool:
        return self.header("upgrade").lower() == "websocket"


def parse_head(head: bytes) -> Request | None:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or "\n" in line or "\r" in line:
            return None  # no obs-fold, no bare newlines: nothing odd reaches the dev server
        headers.append((name, value.strip()))
    return Request(method, target, version, headers)


def upstream_head(request: Request, *, host: str, port: int, client_ip: str) -> bytes:
    """The request head as the dev server sees it: loopback Host, forwarding headers, no hop-by-hop."""
    named = {token.strip().lower() for token in request.header("connection").split(",")}
    drop = HOP_BY_HOP | named | {"host", "x-forwarded-host", "x-forwarded-for", "x-forwarded-proto"}
    if request.header("transfer-encoding"):
        drop = drop - {"transfer-encoding"}  # the body is piped as sent, framing and all
    target = request.target
    if "://" in target:  # absolute-form: keep only path and query
        parts = urlsplit(target)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    forwarded_for = ", ".join(filter(None, [request.header("x-forwarded-for"), client_ip]))
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"{request.method} {target} {request.version}", f"Host: {authority}"]
    lines += [f"{name}: {value}" for name, value in request.headers if name.lower() not in drop]
    lines += [
        f"X-Forwarded-Host: {request.header('x-forwarded-host') or request.header('host')}",
        f"X-Forwarded-Proto: {request.header('x-forwarded-proto') or 'http'}",
        f"X-Forwarded-For: {forwarded_for}",
    ]
    lines += ["Connection: Upgrade", "Upgrade: websocket"] if request.is_websocket else ["Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response_head(status: int, length: int, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(length),
        "Cache-Control": "no-store",
        "Connection": "close",
        **(extra or {}),
    }
    head = f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n").encode("latin-1")


def response(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    return response_head(status, len(body), content_type, extra) + body


def json_response(status: int, data: Any) -> bytes:
    return response(status, json.dumps(data).encode(), "application/json")


def static_target(root: Path, request_path: str) -> str | tuple[int, dict[str, str]]:
    """The file under ``PROJECT_DIR`` a request names, or the status to answer (404, or 301 to add a slash)."""
    relative = unquote(request_path).lstrip("/")
    if relative == "" or relative.endswith("/"):
        relative += "index.html"
    try:
        check_path(relative)
    except FileRefused:
        return 404, {}
    full = os.path.realpath(root / relative)
    if not full.startswith(str(root) + os.sep):
        return 404, {}
    if os.path.isdir(full):
        return 301, {"Location": request_path + "/"}
    return full


class Front:
    """One connection, one request: answer it locally or hand the socket to the dev server."""

    def __init__(
        self,
        *,
        devserver: DevServer,
        root: Path,
        health: Callable[[], dict[str, Any]],
        on_request: Callable[[], None],
    ) -> None:
        self.devserver, self.root, self.health, self.on_request = devserver, root, health, on_request

    async def serve(self, host: str, port: int) -> asyncio.Server:
        # host "" → None: one listening socket per address family, so IPv6 (Fly's 6PN) works too.
        return await asyncio.start_server(self.handle, host or None, port, limit=MAX_HEAD_BYTES)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader)
            if request is None:
                writer.write(response(400, b"bad request", "text/plain"))
            else:
                await self._dispatch(request, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            logger.exception("request failed")
        finally:
            await _close(writer)

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_SECONDS)
        except asyncio.LimitOverrunError:
            return None
        return parse_head(head)

    async def _dispatch(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = request.path
        if path == "/health":
            writer.write(json_response(200, self.health()))
        elif path == "/logs":
            writer.write(json_response(200, {"lines": list(self.devserver.logs.lines)}))
        else:
            self.on_request()
            await self._preview(request, reader, writer)
        await writer.drain()

    async def _preview(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.devserver.is_static and not request.is_websocket:
            await self._static(request, writer)
        elif not (self.devserver.is_up and await self._pipe(request, reader, writer)):
            page = STARTING_PAGE.format(state=html.escape(self.devserver.state)).encode()
            writer.write(response(503, page, "text/html; charset=utf-8", {"Retry-After": "2"}))

    async def _static(self, request: Request, writer: asyncio.StreamWriter) -> None:
        """A project without a dev server, served from disk."""
        target = static_target(self.root, request.path)
        if isinstance(target, str):
            # Opened again from the root without following links: the agent may be root, and the user's
            # code could swap a folder for a symlink between the check above and this open.
            segments = tuple(os.path.relpath(target, self.root).split(os.sep))
            try:
                handle = os.fdopen(open_inside(self.root, segments), "rb")
            except (OSError, FileRefused):
                target = (404, {})
            else:
                with handle:
                    await _send_file(handle, writer, name=target, head_only=request.method == "HEAD")
                return
        status, extra = target
        writer.write(response(status, b"not found" if status == 404 else b"", "text/plain", extra))

    async def _pipe(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.devserver.host, self.devserver.port)
        except OSError:
            return False
        peer = writer.get_extra_info("peername")
        head = upstream_head(
            request, host=self.devserver.host, port=self.devserver.port, client_ip=peer[0] if peer else ""
        )
        up_writer.write(head)
        upload = asyncio.create_task(_copy(reader, up_writer, half_close=True))
        try:
            await _copy(up_reader, writer, half_close=False)
        finally:
            upload.cancel()
            await _close(up_writer)
        return True


async def _send_file(handle: BinaryIO, writer: asyncio.StreamWriter, *, name: str, head_only: bool) -> None:
    """In chunks: a big asset must not sit in the agent's memory."""
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    writer.write(response_head(200, os.fstat(handle.fileno()).st_size, kind))
    while not head_only and (chunk := handle.read(PIPE_CHUNK)):
        writer.write(chunk)
        await writer.drain()


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, half_close: bool) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(PIPE_CHUNK):
            sink.write(chunk)
            await sink.drain()
        if half_close and sink.can_write_eof():
            sink.write_eof()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
