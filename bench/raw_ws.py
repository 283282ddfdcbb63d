"""Lean websocket receivers for the fan-out bench, stamped with the kernel's receive time.

The bench clients share the machine's two cores with the server. With the `websockets` client each
delivery cost the client 50 to 60 µs, and a broadcast to 1,000 sockets of one client process took it
50 ms to read: the later sockets' "receive" times measured the client's queue, not the server (the
reference server showed the same tail). These receivers read raw sockets (a few µs per frame) and
take the receive time from the kernel (``SO_TIMESTAMPNS``: when the bytes reached the client's socket,
however late the client reads them). Both times are kept: ``p99`` uses the kernel's, ``client_p99``
the moment the client parsed the frame.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections.abc import Callable

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; the constant is missing from Python's module
_ANCILLARY = socket.CMSG_SPACE(16)  # one struct timespec
_RECV = 1 << 16

# (kernel receive time, client parse time, sender's time in the payload)
Sample = tuple[float, float, float]


class FrameReader:
    """Splits a server's byte stream (unmasked frames) into whole message payloads."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        payloads: list[bytes] = []
        while (frame := self._next()) is not None:
            payloads.append(frame)
        return payloads

    def _next(self) -> bytes | None:
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        length, start = buffer[1] & 0x7F, 2
        if length == 126:
            length, start = (int.from_bytes(buffer[2:4], "big"), 4) if len(buffer) >= 4 else (-1, 0)
        elif length == 127:
            length, start = (int.from_bytes(buffer[2:10], "big"), 10) if len(buffer) >= 10 else (-1, 0)
        if length < 0 or len(buffer) < start + length:
            return None
        self.buffer = buffer[start + length :]
        return buffer[start : start + length] if buffer[0] & 0x0F == 0x1 else b""


def masked_text(text: str) -> bytes:
    """One client text frame (clients must mask)."""
    data, mask = text.encode(), os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    n = len(data)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return bytes([0x81]) + length + mask + body


async def connect(port: int, path: str) -> tuple[socket.socket, bytes]:
    """A non-blocking socket after the websocket handshake, and whatever arrived after it."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise ConnectionError("the server closed the socket during the handshake")
        answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {head[:40]!r}")
    return sock, rest


class Receiver:
    """One socket joined to its topics, read by a loop reader callback."""

    def __init__(self, sock: socket.socket, reader: FrameReader, samples: list[Sample]) -> None:
        self.sock, self.reader, self.samples = sock, reader, samples

    @classmethod
    async def join(cls, port: int, path: str, joins: list[str], samples: list[Sample]) -> Receiver:
        loop = asyncio.get_running_loop()
        sock, rest = await connect(port, path)
        reader = FrameReader()
        replies = reader.feed(rest)
        for join in joins:
            await loop.sock_sendall(sock, masked_text(join))
        while len(replies) < len(joins):
            replies += reader.feed(await loop.sock_recv(sock, 4096))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        receiver = cls(sock, reader, samples)
        loop.add_reader(sock.fileno(), receiver.on_readable)
        return receiver

    def on_readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(_RECV, _ANCILLARY)
        except BlockingIOError:
            return
        except OSError:
            data, ancillary = b"", []
        if not data:
            self.stop()
            return
        stamp = _kernel_time(ancillary)
        for payload in self.reader.feed(data):
            _sample(payload, stamp, self.samples.append)

    def stop(self) -> None:
        if self.sock.fileno() >= 0:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()


def _kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return float(seconds + nanoseconds / 1e9)
    return time.time()


def _sample(payload: bytes, stamp: float, add: Callable[[Sample], None]) -> None:
    if b'"broadcast"' not in payload:
        return
    frame = json.loads(payload)
    if frame.get("event") == "broadcast":
        add((stamp, time.time(), frame["payload"]["payload"]["t"]))
