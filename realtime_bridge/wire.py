"""Pre-framed websocket writes for the fan-out: one frame's bytes for every receiver, written straight out.

A broadcast to 1,000 sockets used to cost each socket the consumer's send, daphne's ``handle_reply``,
autobahn's framing and Twisted's ``write``, which registers the socket with the event loop and writes it
on the next turn (two ``epoll_ctl`` calls and a ``send``): about 50 µs per delivery, most of the fan-out's
CPU (docs/benchmarks.md has the profile). Server frames are not masked, so one broadcast's frame is the
same bytes for every receiver of a serializer version: ``frame_bytes`` builds it once and a
``DaphneWriter`` hands it to the kernel with one ``send`` when nothing is queued before it.

A socket that cannot take its frames now gets them queued in Twisted's buffer, in order. Its backlog is
bounded: past ``REALTIME_MAX_SEND_BUFFER_BYTES`` unsent, the hub closes the socket (a stalled reader never
delays the others, and never grows the server's memory without bound).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

logger = logging.getLogger(__name__)

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
_FIN = 0x80


def frame_bytes(data: str | bytes) -> bytes:
    """One whole RFC 6455 server frame (FIN set, unmasked): text for ``str``, binary for ``bytes``."""
    payload, opcode = (data.encode("utf-8"), OPCODE_TEXT) if isinstance(data, str) else (data, OPCODE_BINARY)
    return _header(opcode, len(payload)) + payload


def _header(opcode: int, length: int) -> bytes:
    if length < 126:
        return bytes([_FIN | opcode, length])
    if length < 1 << 16:
        return bytes([_FIN | opcode, 126]) + length.to_bytes(2, "big")
    return bytes([_FIN | opcode, 127]) + length.to_bytes(8, "big")


class DirectWriter(Protocol):
    def write(self, wire: bytes) -> bool:
        """Write one pre-framed message; False when the socket needs the ordinary (ASGI) send."""

    def backlog(self) -> int:
        """Bytes accepted but not yet handed to the kernel."""

    def abort(self) -> None:
        """Drop the connection at once (its backlog is discarded)."""


class DaphneWriter:
    """Writes to the TCP socket under one daphne websocket (autobahn over Twisted), in order.

    Falls back (returns False) whenever the plain path is not safe: not open, compression negotiated,
    autobahn's own send queue in use, or a TLS transport.
    """

    __slots__ = ("protocol",)

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        _no_delay(protocol.transport)

    def _transport(self) -> Any:
        protocol = self.protocol
        if protocol.state != protocol.STATE_OPEN or protocol._perMessageCompress is not None or protocol.send_queue:
            return None
        transport = protocol.transport
        if transport is None or getattr(transport, "TLS", False) or not getattr(transport, "connected", False):
            return None
        return transport

    def write(self, wire: bytes) -> bool:
        transport = self._transport()
        if transport is None:
            return False
        if not _pending(transport):
            sent = _send_now(transport.socket, wire)
            if sent == len(wire):
                return True
            wire = wire[sent:]
        transport.write(wire)  # after what is queued; Twisted sends it when the socket can take it
        return True

    def backlog(self) -> int:
        transport = self.protocol.transport
        return 0 if transport is None or not hasattr(transport, "dataBuffer") else _pending(transport)

    def abort(self) -> None:
        transport = self.protocol.transport
        if transport is not None:
            transport.abortConnection()


def _no_delay(transport: Any) -> None:
    """Small frames go out at once (Twisted leaves Nagle on; asyncio, and so the reference server, turns it off)."""
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        try:
            set_no_delay(True)
        except OSError:
            logger.debug("realtime socket closed before TCP_NODELAY could be set")


def _pending(transport: Any) -> int:
    return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)


def _send_now(sock: Any, wire: bytes) -> int:
    """Bytes the kernel took at once (0 when its buffer is full; a dead socket is the reactor's to notice)."""
    try:
        return int(sock.send(wire))
    except BlockingIOError:
        return 0
    except OSError:
        return len(wire)  # the connection is going away: nothing more can be delivered to it


def writer_for(send: Any) -> DirectWriter | None:
    """The direct writer behind an ASGI ``send`` when the server is daphne, else None (ASGI path only)."""
    protocol = _daphne_protocol(send)
    if protocol is None or not hasattr(protocol, "send_queue"):
        return None
    return DaphneWriter(protocol)


def _daphne_protocol(send: Any) -> Any:
    """daphne passes ``functools.partial(server.handle_reply, protocol)`` as each websocket's send."""
    func, args = getattr(send, "func", None), tuple(getattr(send, "args", ()))
    owner = getattr(func, "__self__", None)
    if owner is None or type(owner).__module__ != "daphne.server" or len(args) != 1:
        return None
    return args[0]
