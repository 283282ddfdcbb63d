"""Serializer tests against the frames recorded in docs/ref supabase-realtime.md sections 2-3."""

import json

import pytest

from realtime_bridge import protocol as p

KIND3_JSON = bytes.fromhex("0301010e06000136377265616c74696d653a726f6f6d31637572736f727b2278223a312c2279223a327d")
KIND3_RAW = bytes.fromhex("0301010e06000036387265616c74696d653a726f6f6d31637572736f72cafebabe")
KIND4_JSON = bytes.fromhex("040e0600017265616c74696d653a726f6f6d31637572736f727b2278223a312c2279223a327d")


def _text(frames: p.BroadcastFrames, vsn: str) -> str:
    frame = frames.for_vsn(vsn)
    assert isinstance(frame, str)
    return frame


def _binary(frames: p.BroadcastFrames) -> bytes:
    frame = frames.for_vsn("2.0.0")
    assert isinstance(frame, bytes)
    return frame


def test_it_decodes_the_observed_kind_3_json_push_from_realtime_js():
    msg = p.decode_v2_binary(KIND3_JSON)
    assert (msg.topic, msg.event, msg.ref, msg.join_ref) == ("realtime:room1", "broadcast", "7", "6")
    assert msg.payload == p.BinaryBroadcast(event="cursor", data=b'{"x":1,"y":2}', encoding=1)
    assert msg.payload.json_payload() == {"x": 1, "y": 2}


def test_it_decodes_a_kind_3_push_carrying_raw_bytes():
    msg = p.decode_v2_binary(KIND3_RAW)
    assert msg.payload.encoding == p.ENCODING_BINARY
    assert msg.payload.data == bytes.fromhex("cafebabe")
    with pytest.raises(p.ProtocolError):
        msg.payload.json_payload()


def test_it_encodes_the_kind_4_frame_realtime_js_accepted():
    body = p.BinaryBroadcast(event="cursor", data=b'{"x":1,"y":2}', encoding=1)
    assert p.encode_user_broadcast("realtime:room1", body) == KIND4_JSON


def test_it_round_trips_a_kind_3_push_with_metadata():
    body = p.BinaryBroadcast(event="e", data=b"{}", encoding=1, metadata={"persist": True})
    frame = p.encode_user_broadcast_push("realtime:t", body, ref="2", join_ref="1")
    assert p.decode_v2_binary(frame) == p.Message("realtime:t", "broadcast", body, "2", "1")


def test_it_refuses_truncated_and_unknown_binary_frames():
    for frame in (KIND3_JSON[:12], b"", b"\x02\x01\x01", b"\x09abc"):
        with pytest.raises(p.ProtocolError):
            p.decode_v2_binary(frame)


def test_it_refuses_header_strings_longer_than_255_bytes():
    body = p.BinaryBroadcast(event="e" * 256, data=b"{}")
    with pytest.raises(p.ProtocolError):
        p.encode_user_broadcast("realtime:t", body)


def test_it_decodes_the_python_heartbeat_with_a_null_ref():
    raw = '{"event":"heartbeat","payload":{},"topic":"phoenix","ref":null,"join_ref":null}'
    assert p.decode_v1(raw) == p.Message("phoenix", "heartbeat", {}, None, None)


def test_it_replies_to_a_v1_heartbeat_with_exactly_four_keys():
    request = p.decode_v1('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"12"}')
    frame = json.loads(p.encode_v1(p.reply(request)))
    assert frame == {
        "topic": "phoenix",
        "event": "phx_reply",
        "payload": {"status": "ok", "response": {}},
        "ref": "12",
    }


def test_it_refuses_v1_frames_without_a_ref_key():
    with pytest.raises(p.ProtocolError):
        p.decode_v1('{"topic":"phoenix","event":"heartbeat","payload":{}}')
    with pytest.raises(p.ProtocolError):
        p.decode_v1("[1,2]")


def test_it_round_trips_the_v2_join_of_realtime_js():
    raw = (
        '["6","6","realtime:mixed","phx_join",{"config":{"broadcast":{"ack":false,"self":false},'
        '"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}]'
    )
    msg = p.decode_v2_text(raw)
    assert (msg.join_ref, msg.ref, msg.topic, msg.event) == ("6", "6", "realtime:mixed", "phx_join")
    reply = p.encode_v2_text(p.reply(msg, response={"postgres_changes": []}))
    assert reply == ('["6","6","realtime:mixed","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]')


def test_it_tolerates_extra_trailing_elements_in_v2_text_frames():
    msg = p.decode_v2_text('[null,"12","phoenix","heartbeat",{},"extra"]')
    assert msg == p.Message("phoenix", "heartbeat", {}, "12", None)


def test_it_chooses_the_serializer_from_vsn_and_defaults_to_1_0_0():
    assert p.serializer_for(None) is p.SERIALIZERS["1.0.0"]
    assert p.serializer_for("2.0.0") is p.SERIALIZERS["2.0.0"]
    assert p.serializer_for("3.0.0") is None


def test_a_json_broadcast_is_encoded_for_both_versions_with_null_refs():
    payload = {"type": "broadcast", "event": "cursor", "payload": {"x": 1, "y": 2}}
    frames = p.BroadcastFrames("realtime:room1", payload, None)
    assert json.loads(_text(frames, "1.0.0")) == {
        "topic": "realtime:room1",
        "event": "broadcast",
        "payload": payload,
        "ref": None,
    }
    assert json.loads(_text(frames, "2.0.0")) == [None, None, "realtime:room1", "broadcast", payload]
    assert frames.for_vsn("2.0.0") is frames.for_vsn("2.0.0")


def test_a_binary_broadcast_goes_out_as_kind_4_to_v2_and_as_json_to_v1():
    frames = p.BroadcastFrames.from_binary("realtime:room1", p.decode_v2_binary(KIND3_JSON).payload)
    assert frames.for_vsn("2.0.0") == KIND4_JSON
    assert json.loads(_text(frames, "1.0.0"))["payload"] == {
        "type": "broadcast",
        "event": "cursor",
        "payload": {"x": 1, "y": 2},
    }


def test_a_raw_bytes_broadcast_is_not_delivered_to_v1_receivers():
    frames = p.BroadcastFrames.from_binary("realtime:room1", p.decode_v2_binary(KIND3_RAW).payload)
    assert frames.for_vsn("1.0.0") is None
    assert _binary(frames)[0] == p.KIND_USER_BROADCAST
