"""Presence state of one topic in one process: local entries plus replicas of other processes'."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

Metas = dict[str, dict[str, list[dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    payload: dict[str, Any]
    meta: dict[str, Any]


def _one(key: str, meta: dict[str, Any]) -> Metas:
    return {key: {"metas": [meta]}}


class PresenceTable:
    def __init__(self) -> None:
        self._local: dict[str, Entry] = {}
        self._remote: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}

    def track(self, owner: str, key: str, payload: dict[str, Any]) -> dict[str, Metas] | None:
        """Track `owner` (one socket's channel) under `key`; None when nothing changed."""
        previous = self._local.get(owner)
        if previous is not None and previous.key == key and previous.payload == payload:
            return None
        meta = {**payload, "phx_ref": uuid.uuid4().hex[:20]}
        leaves: Metas = {}
        if previous is not None:
            meta["phx_ref_prev"] = previous.meta["phx_ref"]
            leaves = _one(previous.key, previous.meta)
        self._local[owner] = Entry(key=key, payload=payload, meta=meta)
        return {"joins": _one(key, meta), "leaves": leaves}

    def untrack(self, owner: str) -> dict[str, Metas] | None:
        previous = self._local.pop(owner, None)
        if previous is None:
            return None
        return {"joins": {}, "leaves": _one(previous.key, previous.meta)}

    def local_entries(self) -> list[Entry]:
        return list(self._local.values())

    def local_state(self) -> Metas:
        state: Metas = {}
        for entry in self._local.values():
            state.setdefault(entry.key, {"metas": []})["metas"].append(entry.meta)
        return state

    def state(self) -> Metas:
        """Every known presence, this process's and the replicated ones."""
        state = self.local_state()
        for entries in self._remote.values():
            for key, meta in entries.values():
                state.setdefault(key, {"metas": []})["metas"].append(meta)
        return state

    def apply_remote(self, origin: str, diff: dict[str, Metas]) -> None:
        entries = self._remote.setdefault(origin, {})
        for value in diff.get("leaves", {}).values():
            for meta in value.get("metas", []):
                entries.pop(str(meta.get("phx_ref")), None)
        for key, value in diff.get("joins", {}).items():
            for meta in value.get("metas", []):
                entries[str(meta.get("phx_ref"))] = (key, meta)
        if not entries:
            self._remote.pop(origin, None)
