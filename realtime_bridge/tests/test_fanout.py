"""The fan-out path: one encode per serializer version, direct pre-framed writes, stalled readers dropped."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import websockets

from realtime_bridge import metrics, protocol, wire
from realtime_bridge.hub import Hub, write_direct
from realtime_bridge.protocol import VSN_1, VSN_2, BinaryBroadcast, BroadcastFrames
from realtime_bridge.testing import RealtimeServer, service_token
from velocity.testing import async_wait_until

PAYLOAD = {"type": "broadcast", "event": "file:update", "payload": {"path": "a.ts"}}


class RecordingWriter:
    """A direct writer that keeps what it was given and reports a chosen backlog."""

    def __init__(self, *, accepts: bool = True, backlog: int = 0) -> None:
        self.accepts, self.pending, self.aborted = accepts, backlog, False
        self.written: list[bytes] = []

    def write(self, data: bytes) -> bool:
        if self.accepts:
            self.written.append(data)
        return self.accepts

    def backlog(self) -> int:
        return self.pending

    def abort(self) -> None:
        self.aborted = True


class FakeConn:
    def __init__(self, vsn: str, writer: RecordingWriter | None = None) -> None:
        self.id, self.vsn, self.writer = uuid.uuid4().hex, vsn, writer
        self.sent: list[str | bytes] = []
        self.dropped = False

    async def send_frame(self, frame: str | bytes) -> None:
        self.sent.append(frame)

    async def overflowed(self) -> None:
        self.dropped = True


def _body(frame: bytes) -> bytes:
    """The payload of one unmasked frame."""
    return frame[{126: 4, 127: 10}.get(frame[1], 2) :]


def hub_with(group: str, conns: list[FakeConn]) -> Hub:
    hub = Hub()
    hub.groups[group] = {c.id: SimpleNamespace(conn=c, self_broadcast=False) for c in conns}  # type: ignore[misc]
    return hub


# --- frames ---------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_a_frame_is_one_unmasked_final_frame_with_the_rfc_6455_length_form(length):
    frame = wire.frame_bytes("x" * length)
    assert frame[0] == 0x81 and frame.endswith(b"x" * length)
    if length < 126:
        assert frame[1] == length
    elif length < 65536:
        assert frame[1] == 126 and int.from_bytes(frame[2:4], "big") == length
    else:
        assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == length


def test_bytes_become_a_binary_frame_and_text_is_sent_as_utf_8():
    assert wire.frame_bytes(b"\x04ab") == b"\x82\x03\x04ab"
    assert wire.frame_bytes("é") == b"\x81\x02" + "é".encode()


def test_one_broadcast_is_encoded_and_framed_once_per_serializer_version(monkeypatch):
    calls: dict[str, int] = {"v1": 0, "v2": 0, "frame": 0}

    def counting(name: str, real: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            calls[name] += 1
            return real(*args)

        return wrapper

    monkeypatch.setattr(protocol, "encode_v1", counting("v1", protocol.encode_v1))
    monkeypatch.setattr(protocol, "encode_v2_text", counting("v2", protocol.encode_v2_text))
    monkeypatch.setattr(protocol, "frame_bytes", counting("frame", protocol.frame_bytes))
    conns: list[Any] = [FakeConn(VSN_1 if i % 2 else VSN_2, RecordingWriter()) for i in range(200)]
    frames = BroadcastFrames("realtime:t", PAYLOAD, None)
    outcome = write_direct(conns, frames, max_backlog=1 << 20)
    assert calls == {"v1": 1, "v2": 1, "frame": 2}
    assert outcome.delivered == 200 and not outcome.indirect and not outcome.overflowing
    assert len({id(c.writer.written[0]) for c in conns if c.writer is not None}) == 2  # the same bytes objects


def test_a_raw_bytes_broadcast_reaches_only_v2_receivers_as_kind_4():
    v1, v2 = FakeConn(VSN_1, RecordingWriter()), FakeConn(VSN_2, RecordingWriter())
    receivers: list[Any] = [v1, v2]
    frames = BroadcastFrames.from_binary("realtime:t", BinaryBroadcast("blob", b"\x00\x01", protocol.ENCODING_BINARY))
    assert write_direct(receivers, frames, max_backlog=1 << 20).delivered == 1
    assert v1.writer is not None and v2.writer is not None
    assert v1.writer.written == [] and v2.writer.written[0][2] == protocol.KIND_USER_BROADCAST


# --- the hub's delivery --------------------------------------------------------------------


@pytest.mark.django_db
async def test_sockets_without_a_direct_writer_get_the_frame_through_their_send():
    direct, plain, refusing = (
        FakeConn(VSN_1, RecordingWriter()),
        FakeConn(VSN_1),
        FakeConn(VSN_2, RecordingWriter(accepts=False)),
    )
    hub = hub_with("g", [direct, plain, refusing])
    assert await hub.deliver("g", BroadcastFrames("realtime:t", PAYLOAD, None), sender=None) == 3
    assert direct.writer is not None and json.loads(_body(direct.writer.written[0]))["payload"] == PAYLOAD
    assert json.loads(plain.sent[0])["event"] == "broadcast"
    assert json.loads(refusing.sent[0])[3] == "broadcast"


@pytest.mark.django_db
async def test_a_socket_over_its_backlog_is_dropped_and_the_others_still_get_the_frame():
    stalled, healthy = FakeConn(VSN_1, RecordingWriter(backlog=10_000)), FakeConn(VSN_1, RecordingWriter())
    hub = hub_with("g", [stalled, healthy])
    hub.max_backlog = 5_000
    await hub.deliver("g", BroadcastFrames("realtime:t", PAYLOAD, None), sender=None)
    assert stalled.dropped and not healthy.dropped
    assert healthy.writer is not None and len(healthy.writer.written) == 1


async def test_a_dropped_socket_is_aborted_and_counted(monkeypatch):
    from realtime_bridge.connection import Connection

    writer = RecordingWriter()
    conn = Connection.__new__(Connection)
    conn.id, conn.writer = "c", writer
    before = metrics.snapshot()["slow_consumers_dropped"]
    await conn.overflowed()
    assert writer.aborted and metrics.snapshot()["slow_consumers_dropped"] == before + 1


# --- the daphne writer ---------------------------------------------------------------------


class FakeSocket:
    def __init__(self, takes: int | None) -> None:
        self.takes, self.sent = takes, b""

    def send(self, data: bytes) -> int:
        if self.takes == 0:
            raise BlockingIOError
        taken = len(data) if self.takes is None else min(self.takes, len(data))
        self.sent += data[:taken]
        return taken


class FakeTransport:
    TLS = False
    connected = True

    def __init__(self, sock: FakeSocket, queued: bytes = b"") -> None:
        self.socket, self.dataBuffer, self.offset = sock, queued, 0
        self._tempDataBuffer: list[bytes] = []
        self._tempDataLen = 0

    def write(self, data: bytes) -> None:
        self._tempDataBuffer.append(data)
        self._tempDataLen += len(data)


def daphne_protocol(transport: FakeTransport, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "STATE_OPEN": 3,
        "state": 3,
        "_perMessageCompress": None,
        "send_queue": [],
        "transport": transport,
    }
    return SimpleNamespace(**{**fields, **overrides})


def test_an_idle_socket_is_written_at_once_and_a_partial_write_queues_the_rest_in_order():
    whole = FakeTransport(FakeSocket(None))
    assert wire.DaphneWriter(daphne_protocol(whole)).write(b"frame")
    assert whole.socket.sent == b"frame" and whole._tempDataLen == 0
    partial_write = FakeTransport(FakeSocket(2))
    writer = wire.DaphneWriter(daphne_protocol(partial_write))
    assert writer.write(b"frame") and partial_write._tempDataBuffer == [b"ame"] and writer.backlog() == 3


def test_behind_queued_bytes_a_frame_waits_its_turn():
    transport = FakeTransport(FakeSocket(None), queued=b"earlier")
    assert wire.DaphneWriter(daphne_protocol(transport)).write(b"later")
    assert transport.socket.sent == b"" and transport._tempDataBuffer == [b"later"]


def test_a_full_kernel_buffer_queues_the_whole_frame():
    transport = FakeTransport(FakeSocket(0))
    assert wire.DaphneWriter(daphne_protocol(transport)).write(b"frame")
    assert transport._tempDataBuffer == [b"frame"]


@pytest.mark.parametrize("overrides", [{"state": 2}, {"_perMessageCompress": object()}, {"send_queue": [(b"x", True)]}])
def test_a_socket_not_open_compressed_or_queueing_in_autobahn_takes_the_ordinary_send(overrides):
    transport = FakeTransport(FakeSocket(None))
    assert not wire.DaphneWriter(daphne_protocol(transport, **overrides)).write(b"frame")
    assert transport.socket.sent == b"" and transport._tempDataLen == 0


def test_only_daphnes_send_yields_a_direct_writer():
    from daphne.server import Server

    server = Server.__new__(Server)
    proto = daphne_protocol(FakeTransport(FakeSocket(None)))
    assert isinstance(wire.writer_for(partial(server.handle_reply, proto)), wire.DaphneWriter)

    async def other_send(message: Any) -> None:
        return None

    assert wire.writer_for(other_send) is None
    assert wire.writer_for(partial(other_send)) is None


# --- a real daphne: a stalled reader ---------------------------------------------------------

LIMIT = 300_000
BIG = 100_000


def _kernel_send_buffer_max() -> int:
    """The most a server socket's kernel send buffer can grow to (Linux autotuning), 4 MiB if unknown."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 * 1024 * 1024


# Twice what the kernel (server send buffer; the stalled client's is pinned small) and the limit can hold.
COUNT = max(120, 2 * (_kernel_send_buffer_max() + LIMIT) // BIG)


@pytest.fixture(scope="module")
def small_backlog_server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealtimeServer]:
    env = {"REALTIME_MAX_SEND_BUFFER_BYTES": str(LIMIT), "REALTIME_LIMITS_PROFILE": "unlimited"}
    server = RealtimeServer(Path(tmp_path_factory.mktemp("rt-backlog")), **env).start()
    yield server
    server.stop()


def _join_frame(topic: str) -> str:
    return json.dumps({"topic": topic, "event": "phx_join", "payload": {"config": {}}, "ref": "1", "join_ref": "1"})


def _masked(text: str) -> bytes:
    """A client text frame (clients must mask)."""
    data, mask = text.encode(), os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    length = bytes([0x80 | len(data)]) if len(data) < 126 else bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
    return bytes([0x81]) + length + mask + body


def _stalled_reader(port: int, path: str, topic: str) -> socket.socket:
    """A raw websocket that joins ``topic`` and then stops reading (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    sock.settimeout(10)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)
    assert answer.startswith(b"HTTP/1.1 101")
    sock.sendall(_masked(_join_frame(topic)))
    return sock


def _drain_until_closed(sock: socket.socket) -> int:
    """Bytes read before the server dropped the connection."""
    total = 0
    sock.settimeout(10)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return total
        if not chunk:
            return total
        total += len(chunk)


@pytest.mark.slow
async def test_a_stalled_reader_is_dropped_while_the_others_get_every_broadcast(small_backlog_server):
    topic = f"realtime:stall-{uuid.uuid4()}"
    path = f"/realtime/v1/websocket?apikey={service_token()}&vsn=1.0.0"
    url = f"ws://127.0.0.1:{small_backlog_server.port}{path}"
    stalled = await asyncio.to_thread(_stalled_reader, small_backlog_server.port, path, topic)
    async with websockets.connect(url, max_size=None) as sender, websockets.connect(url, max_size=None) as reader:
        for ws in (sender, reader):
            await ws.send(_join_frame(topic))
            await ws.recv()
        received: list[int] = []

        async def read() -> None:
            async for raw in reader:
                received.append(json.loads(raw)["payload"]["payload"]["n"])

        reading = asyncio.create_task(read())
        for n in range(COUNT):
            payload = {"type": "broadcast", "event": "file:update", "payload": {"n": n, "body": "x" * BIG}}
            await sender.send(json.dumps({"topic": topic, "event": "broadcast", "payload": payload, "ref": None}))
        await async_wait_until(lambda: len(received) == COUNT or None, timeout=60, what="every broadcast")
        reading.cancel()
    assert received == list(range(COUNT))
    read_bytes = await asyncio.to_thread(_drain_until_closed, stalled)
    stalled.close()
    assert read_bytes < COUNT * BIG  # it was cut off, not served everything late


# --- several processes ------------------------------------------------------------------------


class RecordingLayer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.sent.append((group, message))


@pytest.mark.django_db
async def test_a_broadcast_is_one_layer_message_per_process_whatever_the_local_sockets():
    conns = [FakeConn(VSN_1, RecordingWriter()) for _ in range(50)]
    hub, layer = hub_with("g", conns), RecordingLayer()
    hub.layer, hub.remote, hub.channel_name = layer, True, "process-a"
    await hub.broadcast("g", BroadcastFrames("realtime:t", PAYLOAD, None), sender=None)
    assert [group for group, _ in layer.sent] == ["g"]
    assert all(c.writer is not None and len(c.writer.written) == 1 for c in conns)


@pytest.mark.django_db
async def test_another_process_broadcast_reaches_the_local_sockets_encoded_once_per_version(monkeypatch):
    sender_hub, layer = hub_with("g", []), RecordingLayer()
    sender_hub.layer, sender_hub.remote = layer, True
    await sender_hub.broadcast("g", BroadcastFrames("realtime:t", PAYLOAD, None), sender=None)
    encodes = {"n": 0}
    real = protocol.encode_v2_text

    def counting(message: Any) -> str:
        encodes["n"] += 1
        return real(message)

    monkeypatch.setattr(protocol, "encode_v2_text", counting)
    conns = [FakeConn(VSN_2, RecordingWriter()) for _ in range(30)]
    await hub_with("g", conns)._dispatch(layer.sent[0][1])
    assert encodes["n"] == 1
    assert all(c.writer is not None and json.loads(_body(c.writer.written[0]))[3] == "broadcast" for c in conns)
