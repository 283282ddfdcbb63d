"""A stand-in dev server for proxy tests: echoes each request's method, path, headers and body as JSON."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        data = json.dumps({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Dev-Server", "echo")
        self.end_headers()
        self.wfile.write(data.encode())

    do_GET = do_POST = do_PUT = do_DELETE = _echo

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Echo).serve_forever()
