"""DevServer in-process (the subprocess tests cover it end to end; these pin restart counts)."""

import asyncio
import sys
from pathlib import Path

from preview_agent.devserver import DevServer, free_port

SERVE = f"exec {sys.executable} -m http.server $PORT --bind 127.0.0.1"


async def started_lines(server: DevServer) -> int:
    return sum(entry["line"].startswith("started custom dev server") for entry in server.logs.lines)


async def test_a_package_json_written_over_realtime_restarts_the_dev_server_exactly_once(tmp_path: Path) -> None:
    server = DevServer(tmp_path, port=free_port(), dev_command=SERVE, on_line=lambda stream, line: None)
    server.start()
    try:
        assert await server.wait_ready(15)
        (tmp_path / "package.json").write_text('{"name": "x"}')
        server.notify_changed(["package.json"])
        await asyncio.sleep(2.5)  # longer than the disk watcher's interval
        assert await started_lines(server) == 2
    finally:
        await server.stop()


async def test_other_files_do_not_restart_the_dev_server(tmp_path: Path) -> None:
    server = DevServer(tmp_path, port=free_port(), dev_command=SERVE, on_line=lambda stream, line: None)
    server.start()
    try:
        assert await server.wait_ready(15)
        (tmp_path / "src.js").write_text("x")
        server.notify_changed(["src.js"])
        await asyncio.sleep(1.5)
        assert await started_lines(server) == 1
        assert server.is_up
    finally:
        await server.stop()
