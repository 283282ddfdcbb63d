"""The fan-out reference point: a minimal broadcast server written directly on the `websockets` library.

What Python on this machine can do with no framework: it speaks just enough of Phoenix vsn 1.0.0 for
the bench clients (``phx_join`` answers ok and adds the socket to the topic, ``heartbeat`` answers ok,
``broadcast`` sends the same frame our endpoint sends to every other socket on the topic with
``websockets.broadcast``). No authentication, limits, metrics or mirroring. Bench-only: run as its own
process so that, like daphne, it has a core to compete for.

    .venv/bin/python -m bench.reference_ws --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

_COMPACT = (",", ":")


class Topics:
    """Sockets per topic."""

    def __init__(self) -> None:
        self.members: dict[str, set[ServerConnection]] = {}

    def join(self, topic: str, socket: ServerConnection) -> None:
        self.members.setdefault(topic, set()).add(socket)

    def leave_all(self, socket: ServerConnection) -> None:
        for members in self.members.values():
            members.discard(socket)


def _reply(message: dict[str, Any]) -> str:
    payload = {"status": "ok", "response": {}}
    return json.dumps(
        {"topic": message.get("topic"), "event": "phx_reply", "payload": payload, "ref": message.get("ref")}
    )


def _broadcast_frame(message: dict[str, Any]) -> str:
    frame = {"topic": message["topic"], "event": "broadcast", "payload": message["payload"], "ref": None}
    return json.dumps(frame, separators=_COMPACT, ensure_ascii=False)


async def handle(socket: ServerConnection, topics: Topics) -> None:
    try:
        await _serve(socket, topics)
    except ConnectionClosed:
        pass  # the bench's raw receivers hang up without a close frame
    finally:
        topics.leave_all(socket)


async def _serve(socket: ServerConnection, topics: Topics) -> None:
    async for raw in socket:
        message = json.loads(raw)
        if message.get("event") == "broadcast":
            others = [s for s in topics.members.get(message["topic"], ()) if s is not socket]
            broadcast(others, _broadcast_frame(message))
            continue
        if message.get("event") == "phx_join":
            topics.join(message["topic"], socket)
        await socket.send(_reply(message))


async def serve_forever(port: int) -> None:
    topics = Topics()
    # No compression: daphne does not negotiate it either, so both servers send the same bytes.
    async with serve(lambda s: handle(s, topics), "127.0.0.1", port, compression=None, max_queue=None):
        await asyncio.get_running_loop().create_future()


def main() -> None:
    # The bench's port probe and abrupt hang-ups are expected: keep the run's output readable.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve_forever(parser.parse_args().port))


if __name__ == "__main__":
    main()
