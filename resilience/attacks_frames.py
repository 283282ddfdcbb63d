"""Hostile frames against the realtime endpoint: oversize, malformed, wrong types, binary, deep nesting,
too many channels. After each, a listener on the same topic must not have received the bad broadcast,
and a fresh socket must still round-trip a broadcast (the server survived and serves others).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import websockets

from resilience.context import Context, connect, join, token
from resilience.report import Outcome

OVERSIZE_BYTES = 3_200 * 1024  # over REALTIME_MAX_PAYLOAD_BYTES (3,000 KB), under daphne's 5 MB frame limit
FRAME_LIMIT_BYTES = 6_000_000  # over daphne's frame limit: the server must drop the socket, nothing else


def _broadcast(topic: str, payload: Any, ref: str | None = None) -> str:
    body = {"type": "broadcast", "event": "file:update", "payload": payload}
    return json.dumps(
        {"topic": f"realtime:{topic}", "event": "broadcast", "payload": body, "ref": ref, "join_ref": "1"}
    )


def hostile_frames(topic: str) -> dict[str, str | bytes]:
    return {
        "oversize broadcast (3.2 MB)": _broadcast(topic, {"content": "x" * OVERSIZE_BYTES}, ref="big"),
        "frame over the server's limit (6 MB)": _broadcast(topic, {"content": "x" * FRAME_LIMIT_BYTES}, ref="huge"),
        "malformed JSON": '{"topic": "realtime:' + topic + '", "event": ',
        "JSON that is not an object": "[1, 2, 3]",
        "wrong field types": json.dumps({"topic": 5, "event": ["x"], "payload": "p", "ref": {}, "join_ref": 1}),
        "binary frame on vsn 1.0.0": b"\x03\x00\x00\xff" + b"\x00" * 64,
        "deeply nested JSON": "[" * 50_000 + "]" * 50_000,
        "unknown event": json.dumps({"topic": f"realtime:{topic}", "event": "drop_table", "payload": {}, "ref": "u"}),
        "broadcast on a topic not joined": _broadcast("project:other", {"content": "x"}, ref="nj"),
    }


async def _drain(socket: Any, seconds: float, until: str | None = None) -> list[dict[str, Any]]:
    """Frames received within ``seconds`` (stopping early at an event named ``until``)."""
    frames: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
        async with asyncio.timeout(seconds):
            while not frames or frames[-1].get("event") != until:
                frames.append(json.loads(await socket.recv()))
    return frames


async def _attack(
    ctx: Context, topic: str, frame: str | bytes
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Send one hostile frame; (what the attacker got back, what the listener got, the attacker socket's fate)."""
    url = ctx.ws_url(token(role="service_role"))
    attacker, listener = await connect(url), await connect(url)
    await join(attacker, topic, broadcast={"self": False, "ack": True})
    await join(listener, topic)
    with contextlib.suppress(websockets.ConnectionClosed):  # the server may drop it mid-send
        await attacker.send(frame)
    replies, heard = await asyncio.gather(_drain(attacker, 2), _drain(listener, 2))
    fate = f"closed ({attacker.close_code})" if attacker.close_code is not None else "open"
    await asyncio.gather(attacker.close(), listener.close())
    return replies, heard, fate


async def round_trip(ctx: Context) -> bool:
    topic = f"project:probe-{uuid.uuid4().hex[:8]}"
    url = ctx.ws_url(token(role="service_role"))
    sender, receiver = await connect(url), await connect(url)
    try:
        await join(sender, topic)
        await join(receiver, topic)
        await sender.send(_broadcast(topic, {"probe": True}))
        heard = await _drain(receiver, 5, until="broadcast")
        return any(frame.get("event") == "broadcast" for frame in heard)
    finally:
        await asyncio.gather(sender.close(), receiver.close())


async def too_many_channels(ctx: Context) -> dict[str, Any]:
    socket = await connect(ctx.ws_url(token(role="service_role")))
    try:
        for index in range(100):
            await join(socket, f"project:many-{index}", ref=str(index))
        return await join(socket, "project:many-100", ref="101")
    finally:
        await socket.close()


def run(ctx: Context, out: Outcome) -> None:
    topic = f"project:frames-{uuid.uuid4().hex[:8]}"
    for name, frame in hostile_frames(topic).items():
        replies, heard, fate = asyncio.run(_attack(ctx, topic, frame))
        errors = [
            r["payload"].get("response", {}).get("reason")
            for r in replies
            if r.get("payload", {}).get("status") == "error"
        ]
        leaked = [f for f in heard if f.get("event") == "broadcast"]
        out.step(f"sent {name}")
        out.check(
            not leaked,
            f"{name}: not delivered; attacker socket {fate}; error replies {errors}",
            f"{name}: delivered to the listener ({len(leaked)} frames)",
        )
        if not errors and not fate.startswith(("closed (1009", "closed (1003", "closed (1007")):
            out.unclear_refusal(f"{name}: no error reply, socket {fate}")
        out.check(asyncio.run(round_trip(ctx)), f"{name}: others still served", f"{name}: broadcasts stopped working")
    answer = asyncio.run(too_many_channels(ctx))
    reason = str(answer.get("response", {}).get("reason", ""))
    out.check(
        answer.get("status") == "error", f"101st channel on one socket: error '{reason}'", f"101st channel: {answer}"
    )
    out.check(ctx.healthy(), "the server is healthy afterwards", "the server is not healthy afterwards")
