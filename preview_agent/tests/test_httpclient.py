import asyncio

import pytest

from preview_agent.httpclient import HttpError, _parse_response, request


def test_it_reads_a_plain_response() -> None:
    raw = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n\r\n{}"
    assert _parse_response(raw) == (202, b"{}")


def test_it_decodes_a_chunked_response() -> None:
    raw = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n4;ext=1\r\n: 1}\r\n0\r\n\r\n'
    assert _parse_response(raw) == (200, b'{"a": 1}')


async def test_it_reads_a_response_that_arrives_in_pieces_until_the_server_closes() -> None:
    async def slow_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b'{"project_id": "p"}')
        writer.close()

    server = await asyncio.start_server(slow_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        status, body = await request("GET", f"http://127.0.0.1:{port}/x", headers={})
    assert (status, body) == (200, b'{"project_id": "p"}')


async def test_it_turns_an_unreachable_server_into_an_http_error() -> None:
    with pytest.raises(HttpError):
        await request("GET", "http://127.0.0.1:9/", headers={}, timeout=2)
