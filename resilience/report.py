"""What a scenario did and found, and whether anything broke: printed as it goes and kept as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Status = Literal["passed", "failed", "not run", "error"]


class NotRun(Exception):
    """The scenario needs a piece that is not there yet (the message says which)."""


@dataclass
class Outcome:
    name: str
    did: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)  # refused safely, but without a clear error
    status: Status = "passed"
    seconds: float = 0.0

    def step(self, text: str) -> None:
        self.did.append(text)
        print(f"  did:    {text}", flush=True)

    def saw(self, text: str) -> None:
        self.found.append(text)
        print(f"  found:  {text}", flush=True)

    def breach(self, text: str) -> None:
        self.breaches.append(text)
        print(f"  BREACH: {text}", flush=True)

    def unclear_refusal(self, text: str) -> None:
        self.unclear.append(text)
        print(f"  UNCLEAR: {text}", flush=True)

    def check(self, ok: bool, good: str, bad: str) -> bool:
        """Record ``good`` as a finding when ``ok``, else ``bad`` as a breach."""
        if ok:
            self.saw(good)
        else:
            self.breach(bad)
        return ok

    def finish(self) -> None:
        if self.breaches and self.status != "error":
            self.status = "failed"


def summary_table(outcomes: list[Outcome]) -> str:
    lines = ["| scenario | status | breaches | unclear refusals | seconds |", "| --- | --- | ---: | ---: | ---: |"]
    for o in outcomes:
        lines.append(f"| {o.name} | {o.status} | {len(o.breaches)} | {len(o.unclear)} | {o.seconds:.1f} |")
    return "\n".join(lines)


def write_json(outcomes: list[Outcome], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(outcome) for outcome in outcomes], indent=2) + "\n")
