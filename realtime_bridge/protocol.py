"""Phoenix Channels frames as Supabase Realtime speaks them (vsn 1.0.0 and 2.0.0).

Pure functions and dataclasses: no Django, no I/O. Byte layouts follow
`/work/shared/ref/supabase-realtime.md` section 2 and Realtime's `V2Serializer`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from realtime_bridge.wire import frame_bytes
from velocity import json_input

VSN_1 = "1.0.0"
VSN_2 = "2.0.0"

KIND_PUSH = 0
KIND_USER_BROADCAST_PUSH = 3
KIND_USER_BROADCAST = 4

ENCODING_BINARY = 0
ENCODING_JSON = 1

MAX_HEADER_BYTES = 255

_COMPACT = {"separators": (",", ":"), "ensure_ascii": False}


class ProtocolError(ValueError):
    """A frame that does not decode; the connection drops it and stays open.

    `request` is the frame's envelope (payload None) when only its payload was unreadable, so the
    connection can still answer a broadcast that asked for an ack.
    """

    def __init__(self, reason: str, request: Message | None = None) -> None:
        super().__init__(reason)
        self.request = request


@dataclass(frozen=True, slots=True)
class Message:
    """One Phoenix message; `payload` is a JSON value (normally a dict)."""

    topic: str
    event: str
    payload: Any
    ref: str | None = None
    join_ref: str | None = None


@dataclass(frozen=True, slots=True)
class BinaryBroadcast:
    """The user part of a kind 3 push or kind 4 frame."""

    event: str
    data: bytes
    encoding: int = ENCODING_JSON
    metadata: dict[str, Any] = field(default_factory=dict)

    def json_payload(self) -> Any:
        """The decoded user payload, or raise ProtocolError for raw bytes / bad JSON."""
        if self.encoding != ENCODING_JSON:
            raise ProtocolError("raw binary payload has no JSON form")
        try:
            return json_input.loads(self.data)
        except ValueError as exc:
            raise ProtocolError("binary broadcast payload is not JSON") from exc


def dumps(value: Any) -> str:
    """Compact JSON as Phoenix sends it."""
    return json.dumps(value, **_COMPACT)  # type: ignore[arg-type]


def _optional_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError(f"{name} must be a string or null")


def _require_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{name} must be a string")
    return value


def _loads(text: str | bytes) -> Any:
    try:
        return json_input.loads(text, unicode_only=False)
    except ValueError as exc:
        raise ProtocolError("frame is not JSON") from exc


def _unicode_only(message: Message, text: str | bytes) -> Message:
    """The message, or ProtocolError when a string in it is not Unicode (a lone surrogate escape).

    Such a string cannot be encoded into any outgoing frame; refusing it here keeps the sender's socket
    and every receiver's open. The envelope rides along when only the payload is at fault.
    """
    if not json_input.may_hold_surrogates(text):
        return message
    envelope = Message(message.topic, message.event, None, ref=message.ref, join_ref=message.join_ref)
    if not json_input.is_unicode([envelope.topic, envelope.event, envelope.ref, envelope.join_ref]):
        raise ProtocolError("frame holds a lone surrogate")
    if not json_input.is_unicode(message.payload):
        raise ProtocolError("payload holds a lone surrogate", request=envelope)
    return message


# --- vsn 1.0.0 -------------------------------------------------------------------------------


def decode_v1(text: str | bytes) -> Message:
    """Decode a V1 JSON object; `topic`, `event`, `payload` and the `ref` key are required."""
    obj = _loads(text)
    if not isinstance(obj, dict):
        raise ProtocolError("v1 frame must be a JSON object")
    if not {"topic", "event", "payload", "ref"} <= obj.keys():
        raise ProtocolError("v1 frame lacks topic, event, payload or ref")
    message = Message(
        topic=_require_str(obj["topic"], "topic"),
        event=_require_str(obj["event"], "event"),
        payload=obj["payload"],
        ref=_optional_str(obj["ref"], "ref"),
        join_ref=_optional_str(obj.get("join_ref"), "join_ref"),
    )
    return _unicode_only(message, text)


def encode_v1(message: Message) -> str:
    """V1 sends exactly topic, event, payload and ref (never join_ref; ref may be null)."""
    return dumps(
        {
            "topic": message.topic,
            "event": message.event,
            "payload": message.payload,
            "ref": message.ref,
        }
    )


# --- vsn 2.0.0 -------------------------------------------------------------------------------


def decode_v2_text(text: str | bytes) -> Message:
    """Decode `[join_ref, ref, topic, event, payload]` (extra trailing elements are tolerated)."""
    arr = _loads(text)
    if not isinstance(arr, list) or len(arr) < 5:
        raise ProtocolError("v2 text frame must be an array of 5 elements")
    join_ref, ref, topic, event, payload = arr[:5]
    message = Message(
        topic=_require_str(topic, "topic"),
        event=_require_str(event, "event"),
        payload=payload,
        ref=_optional_str(ref, "ref"),
        join_ref=_optional_str(join_ref, "join_ref"),
    )
    return _unicode_only(message, text)


def encode_v2_text(message: Message) -> str:
    return dumps([message.join_ref, message.ref, message.topic, message.event, message.payload])


class _Reader:
    """Cursor over a binary frame's header strings."""

    def __init__(self, data: bytes, header_len: int) -> None:
        if len(data) < header_len:
            raise ProtocolError("binary frame shorter than its header")
        self.data = data
        self.pos = header_len

    def take(self, length: int) -> str:
        end = self.pos + length
        if end > len(self.data):
            raise ProtocolError("binary frame shorter than its declared strings")
        try:
            chunk = self.data[self.pos : end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("binary frame string is not UTF-8") from exc
        self.pos = end
        return chunk

    def rest(self) -> bytes:
        return self.data[self.pos :]


def decode_v2_binary(data: bytes) -> Message:
    """Decode kind 3 (user broadcast push) and kind 0 (generic push) frames."""
    if not data:
        raise ProtocolError("empty binary frame")
    if data[0] == KIND_USER_BROADCAST_PUSH:
        return _decode_user_broadcast_push(data)
    if data[0] == KIND_PUSH:
        return _decode_push(data)
    raise ProtocolError("unsupported binary frame kind")


def _decode_user_broadcast_push(data: bytes) -> Message:
    reader = _Reader(data, 7)
    join_ref_len, ref_len, topic_len, event_len, meta_len, encoding = data[1:7]
    if encoding not in (ENCODING_BINARY, ENCODING_JSON):
        raise ProtocolError("unknown binary payload encoding")
    join_ref = reader.take(join_ref_len) or None
    ref = reader.take(ref_len) or None
    topic = reader.take(topic_len)
    event = reader.take(event_len)
    meta_text = reader.take(meta_len)
    metadata = _loads(meta_text) if meta_text else {}
    if not isinstance(metadata, dict):
        raise ProtocolError("binary broadcast metadata must be a JSON object")
    body = BinaryBroadcast(event=event, data=reader.rest(), encoding=encoding, metadata=metadata)
    return Message(topic=topic, event="broadcast", payload=body, ref=ref, join_ref=join_ref)


def _decode_push(data: bytes) -> Message:
    reader = _Reader(data, 5)
    join_ref_len, ref_len, topic_len, event_len = data[1:5]
    join_ref = reader.take(join_ref_len) or None
    ref = reader.take(ref_len) or None
    topic = reader.take(topic_len)
    event = reader.take(event_len)
    return Message(topic=topic, event=event, payload=reader.rest(), ref=ref, join_ref=join_ref)


def _header_bytes(value: str, name: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(f"{name} exceeds 255 bytes")
    return raw


def encode_user_broadcast_push(topic: str, body: BinaryBroadcast, *, ref: str | None, join_ref: str | None) -> bytes:
    """Kind 3, what realtime-js sends; used by tests and the bridge's own checks."""
    parts = [
        _header_bytes(join_ref or "", "join_ref"),
        _header_bytes(ref or "", "ref"),
        _header_bytes(topic, "topic"),
        _header_bytes(body.event, "event"),
        _header_bytes(dumps(body.metadata) if body.metadata else "", "metadata"),
    ]
    header = bytes([KIND_USER_BROADCAST_PUSH, *(len(p) for p in parts), body.encoding])
    return header + b"".join(parts) + body.data


def encode_user_broadcast(topic: str, body: BinaryBroadcast) -> bytes:
    """Kind 4, the only binary frame realtime-js decodes."""
    parts = [
        _header_bytes(topic, "topic"),
        _header_bytes(body.event, "event"),
        _header_bytes(dumps(body.metadata) if body.metadata else "", "metadata"),
    ]
    header = bytes([KIND_USER_BROADCAST, *(len(p) for p in parts), body.encoding])
    return header + b"".join(parts) + body.data


# --- per-connection serializers --------------------------------------------------------------


class Serializer(Protocol):
    vsn: str

    def decode(self, text: str | None, data: bytes | None) -> Message: ...

    def encode(self, message: Message) -> str: ...


class V1Serializer:
    vsn = VSN_1

    def decode(self, text: str | None, data: bytes | None) -> Message:
        if text is None:
            raise ProtocolError("vsn 1.0.0 has no binary frames")
        return decode_v1(text)

    def encode(self, message: Message) -> str:
        return encode_v1(message)


class V2Serializer:
    vsn = VSN_2

    def decode(self, text: str | None, data: bytes | None) -> Message:
        if text is not None:
            return decode_v2_text(text)
        return decode_v2_binary(data or b"")

    def encode(self, message: Message) -> str:
        return encode_v2_text(message)


SERIALIZERS: dict[str, Serializer] = {VSN_1: V1Serializer(), VSN_2: V2Serializer()}


def serializer_for(vsn: str | None) -> Serializer | None:
    """Missing vsn means 1.0.0 (Phoenix); unknown versions are refused (None)."""
    return SERIALIZERS.get(vsn or VSN_1)


# --- replies and broadcast frames ------------------------------------------------------------


def reply(request: Message, status: str = "ok", response: dict[str, Any] | None = None) -> Message:
    """`phx_reply` echoing the request's ref and join_ref."""
    return Message(
        topic=request.topic,
        event="phx_reply",
        payload={"status": status, "response": response if response is not None else {}},
        ref=request.ref,
        join_ref=request.join_ref,
    )


class BroadcastFrames:
    """One broadcast, encoded at most once per wire form, whatever the number of receivers.

    `json_payload` is the map v1 and v2-text receivers get (`{"type","event","payload",...}`);
    `binary` is set when the broadcast arrived as kind 3 (or raw bytes over REST), and then
    v2 receivers get kind 4. A raw-bytes broadcast has no JSON form and skips v1 receivers.
    """

    __slots__ = ("_size", "_v1", "_v2_binary", "_v2_text", "_wire", "binary", "json_payload", "topic")

    def __init__(self, topic: str, json_payload: dict[str, Any] | None, binary: BinaryBroadcast | None) -> None:
        self.topic = topic
        self.json_payload = json_payload
        self.binary = binary
        self._v1: str | None = None
        self._v2_text: str | None = None
        self._v2_binary: bytes | None = None
        self._wire: dict[str, bytes | None] = {}
        self._size: int | None = None

    @classmethod
    def from_binary(cls, topic: str, body: BinaryBroadcast) -> BroadcastFrames:
        json_payload = None
        if body.encoding == ENCODING_JSON:
            json_payload = {"type": "broadcast", "event": body.event, "payload": body.json_payload()}
            if body.metadata:
                json_payload["meta"] = body.metadata
        return cls(topic, json_payload, body)

    @property
    def event(self) -> str:
        if self.binary is not None:
            return self.binary.event
        return str((self.json_payload or {}).get("event", ""))

    def _message(self) -> Message:
        return Message(topic=self.topic, event="broadcast", payload=self.json_payload)

    def for_vsn(self, vsn: str) -> str | bytes | None:
        """The frame for a receiver speaking `vsn`, or None when it cannot receive it."""
        if vsn == VSN_2:
            if self.binary is not None:
                if self._v2_binary is None:
                    self._v2_binary = encode_user_broadcast(self.topic, self.binary)
                return self._v2_binary
            if self._v2_text is None:
                self._v2_text = encode_v2_text(self._message())
            return self._v2_text
        if self.json_payload is None:
            return None
        if self._v1 is None:
            self._v1 = encode_v1(self._message())
        return self._v1

    def wire_for_vsn(self, vsn: str) -> bytes | None:
        """The whole websocket frame of ``for_vsn``, built once per version and shared by every receiver."""
        if vsn not in self._wire:
            frame = self.for_vsn(vsn)
            self._wire[vsn] = None if frame is None else frame_bytes(frame)
        return self._wire[vsn]

    def size(self) -> int:
        """Payload size used for limits and metrics (bytes of the user payload), measured once."""
        if self._size is None:
            if self.binary is not None:
                self._size = len(self.binary.data)
            else:
                self._size = len(dumps((self.json_payload or {}).get("payload")).encode("utf-8"))
        return self._size
