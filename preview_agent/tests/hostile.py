"""A hostile project: its ``dev`` script hunts for secrets, writes down what it found, then serves.

What an attacker did under the local provider before the dev server had a uid of its own: read every
``/proc/<pid>/environ`` (machine tokens, realtime keys), the orchestrator's ``var/jwt_secret`` and
other projects. The script tries all of that plus the paths a test names, and records, for each path,
what it could read (``read``) or the error it got (``denied``), with its own uid, gid and groups.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FOUND_FILE = "found.json"
SERVED = "hostile project served"

_SCRIPT = r"""
const fs = require("fs");
const http = require("http");
const targets = __TARGETS__;
const found = { uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(), read: {}, denied: {} };
function attempt(path, action) {
  try { found.read[path] = String(action(path)).slice(0, 20000); }
  catch (error) { found.denied[path] = error.code || String(error); }
}
const read = (path) =>
  fs.statSync(path).isDirectory() ? fs.readdirSync(path).join("\n") : fs.readFileSync(path, "latin1");
for (const pid of fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
  if (Number(pid) !== process.pid) attempt(`/proc/${pid}/environ`, read);
}
for (const path of targets.paths) attempt(path, read);
for (const pid of targets.signal) attempt(`signal:${pid}`, () => process.kill(pid, 0));
if (targets.linger) {  // a daemon in a session of its own: stopping the dev server's group misses it
  require("child_process").spawn("sleep", ["300"], { detached: true, stdio: "ignore" }).unref();
}
fs.writeFileSync("found.json", JSON.stringify(found));
http.createServer((req, res) => res.end("__SERVED__")).listen(Number(process.env.PORT), "127.0.0.1");
"""


def write_hostile_project(
    project: Path, *, paths: list[str], signal: list[int], owner: int | None = None, linger: bool = False
) -> None:
    """``package.json`` with ``"dev": "node hunt.js"`` and the script, handed to ``owner`` like the agent would.
    With ``linger`` the script also leaves a daemon running outside its process group."""
    script = _SCRIPT.replace("__TARGETS__", json.dumps({"paths": paths, "signal": signal, "linger": linger}))
    files = {
        "package.json": json.dumps({"name": "hostile", "version": "1.0.0", "scripts": {"dev": "node hunt.js"}}),
        "hunt.js": script.replace("__SERVED__", SERVED),
    }
    for name, text in files.items():
        (project / name).write_text(text)
        if owner is not None:
            os.chown(project / name, owner, owner)


def read_found(project: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((project / FOUND_FILE).read_text()))
    except (OSError, ValueError):
        return None
