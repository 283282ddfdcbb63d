"""Test support for webhooks: a real receiver process that verifies each delivery's signature with the
``standardwebhooks`` package, as an operator's receiver would.

``python -m webhooks.testing --secret-file F --plan 500,200 --out O`` listens on a free loopback port (printed
as ``listening <port>``), answers each POST with the next status of the plan (the last one repeats), and
appends one JSON line per request to ``O``: whether the signature verified against the secret(s) in ``F``
(one a line: a rotation's old and new), the headers and the body.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "host")


def verify(secrets: list[str], body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """Which of ``secrets`` verify the delivery (``Webhook.verify``), and the body it returns."""
    verified, payload, errors = [], None, []
    for index, secret in enumerate(secrets):
        try:
            payload = Webhook(secret).verify(body, headers)
            verified.append(index)
        except WebhookVerificationError as exc:
            errors.append(str(exc))
    return {"verified_by": verified, "payload": payload, "errors": errors}


def serve(secret_file: Path, plan: list[int], out: Path) -> None:
    lock, answered = threading.Lock(), [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {name: self.headers.get(name, "") for name in HEADERS}
            secrets = [line for line in secret_file.read_text().splitlines() if line]
            record = {"path": self.path, "headers": headers, "body": body.decode(), **verify(secrets, body, headers)}
            with lock:
                code = plan[min(answered[0], len(plan) - 1)]
                answered[0] += 1
                with out.open("a") as file:
                    file.write(json.dumps({**record, "answered": code}) + "\n")
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


@dataclass
class Receiver:
    url: str
    secret_file: Path
    out: Path

    def secrets(self, *secrets: str) -> None:
        self.secret_file.write_text("\n".join(secrets) + "\n")

    def received(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]


@contextmanager
def receiver_process(folder: Path, plan: str = "200") -> Iterator[Receiver]:
    """A receiver process answering ``plan`` (comma-separated statuses), stopped afterwards."""
    secret_file, out = folder / "secrets", folder / "received.jsonl"
    secret_file.write_text("")
    args = [sys.executable, "-m", "webhooks.testing", "--secret-file", str(secret_file), "--out", str(out)]
    process = subprocess.Popen([*args, "--plan", plan], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("listening "):
            raise RuntimeError(f"the receiver did not start: {line!r}")
        yield Receiver(f"http://127.0.0.1:{line.split()[1]}/hooks/velocity", secret_file, out)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--plan", default="200")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    serve(args.secret_file, [int(code) for code in args.plan.split(",")], args.out)


if __name__ == "__main__":
    main()
