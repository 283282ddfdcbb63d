from preview_agent.httpclient import _parse_response


def test_it_reads_a_plain_response() -> None:
    raw = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n\r\n{}"
    assert _parse_response(raw) == (202, b"{}")


def test_it_decodes_a_chunked_response() -> None:
    raw = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n4;ext=1\r\n: 1}\r\n0\r\n\r\n'
    assert _parse_response(raw) == (200, b'{"a": 1}')
