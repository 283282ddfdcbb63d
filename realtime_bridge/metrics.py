"""Realtime metrics kept in process: Prometheus collectors plus a small snapshot for the dashboard.

Event names are client-chosen, so Prometheus labels use the contract's events and fold the rest
into `other` (unbounded label values would grow the registry forever).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from realtime_bridge.events import PROJECT_TOPIC_PREFIX

KNOWN_EVENTS = frozenset({"file:update", "file:delete", "file:synced", "session:status", "agent:log", "presence"})
RATE_WINDOW = 10  # seconds averaged by `snapshot()["messages_per_second"]`
PENDING_EDITS = 10_000

MESSAGES = Counter("velocity_realtime_messages_total", "Broadcasts received.", ["event"])
DELIVERIES = Counter("velocity_realtime_deliveries_total", "Frames fanned out to sockets.")
SOCKETS = Gauge("velocity_realtime_sockets", "Open realtime sockets in this process.")
JOINS = Counter("velocity_realtime_joins_total", "Accepted channel joins.")
SLOW_DROPPED = Counter(
    "velocity_realtime_slow_consumers_dropped_total", "Sockets closed because their unsent frames passed the limit."
)
REFUSED = Counter("velocity_realtime_refused_joins_total", "Refused joins and handshakes.")
LIMITED = Counter(
    "velocity_realtime_limited_total",
    "Channels shut, joins refused or acks refused by a limit of the profile (label: Supabase's text).",
    ["limit"],
)
TENANT_RATE = Gauge(
    "velocity_realtime_tenant_rate",
    "The tenant-wide average (a second, over the last minute of 5 s ticks) each limit is decided on.",
    ["counter"],
    multiprocess_mode="max",
)
ACK_LAG = Histogram(
    "velocity_realtime_edit_to_ack_seconds",
    "Time from a file:update passing the endpoint to its file:synced.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10),  # 2: the seed's target, an exact edge for alerts
)


class _State:
    def __init__(self) -> None:
        self.sockets = 0
        self.joins = 0
        self.refused = 0
        self.deliveries = 0
        self.slow_dropped = 0
        self.seconds: deque[tuple[int, dict[str, int]]] = deque(maxlen=RATE_WINDOW + 1)
        self.pending: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self.lags: deque[float] = deque(maxlen=1000)


_state = _State()


def _label(event: str) -> str:
    return event if event in KNOWN_EVENTS else "other"


def socket_opened() -> None:
    _state.sockets += 1
    SOCKETS.inc()


def socket_closed() -> None:
    _state.sockets -= 1
    SOCKETS.dec()


def joined() -> None:
    _state.joins += 1
    JOINS.inc()


def join_refused() -> None:
    _state.refused += 1
    REFUSED.inc()


def limited(text: str) -> None:
    LIMITED.labels(limit=text).inc()


def tenant_rate(counter: str, per_second: float) -> None:
    TENANT_RATE.labels(counter=counter).set(per_second)


def slow_consumer_dropped() -> None:
    _state.slow_dropped += 1
    SLOW_DROPPED.inc()


def deliveries(count: int) -> None:
    if count:
        _state.deliveries += count
        DELIVERIES.inc(count)


def broadcast_seen(event: str, size: int) -> None:
    """Count one broadcast by event name for the per-second rates."""
    label = _label(event)
    MESSAGES.labels(event=label).inc()
    second = int(time.time())
    if not _state.seconds or _state.seconds[-1][0] != second:
        _state.seconds.append((second, {}))
    counts = _state.seconds[-1][1]
    counts[label] = counts.get(label, 0) + 1


def file_update_seen(topic: str, path: str, version: str) -> None:
    _state.pending[(topic, path, version)] = time.monotonic()
    while len(_state.pending) > PENDING_EDITS:
        _state.pending.popitem(last=False)


def file_synced_seen(topic: str, path: str, version: str) -> float | None:
    """The edit-to-ack lag in seconds when the matching file:update passed through here."""
    started = _state.pending.pop((topic, path, version), None)
    if started is None:
        return None
    lag = time.monotonic() - started
    _state.lags.append(lag)
    ACK_LAG.observe(lag)
    return lag


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def snapshot() -> dict[str, Any]:
    """Numbers for the operator dashboard (this process only)."""
    now = int(time.time())
    rates: dict[str, float] = {}
    for second, counts in _state.seconds:
        if now - RATE_WINDOW <= second < now:
            for event, count in counts.items():
                rates[event] = rates.get(event, 0) + count / RATE_WINDOW
    lags = list(_state.lags)
    p50, p95 = _percentile(lags, 0.5), _percentile(lags, 0.95)
    return {
        "at": datetime.now(tz=UTC).isoformat(),
        "sockets": _state.sockets,
        "joins": _state.joins,
        "refused_joins": _state.refused,
        "deliveries": _state.deliveries,
        "slow_consumers_dropped": _state.slow_dropped,
        "messages_per_second": rates,
        "edit_to_ack_ms": {
            "count": len(lags),
            "p50": None if p50 is None else round(p50 * 1000, 1),
            "p95": None if p95 is None else round(p95 * 1000, 1),
        },
    }


# --- what the operator views see of a project's broadcasts ------------------------------------


def _lag_ms(sent_at: Any) -> float | None:
    """Lag from a client `sent_at` (ISO-8601 or epoch milliseconds) to now."""
    try:
        if isinstance(sent_at, int | float):
            sent = float(sent_at) / 1000
        elif isinstance(sent_at, str):
            sent = datetime.fromisoformat(sent_at.replace("Z", "+00:00")).timestamp()
        else:
            return None
    except ValueError:
        return None
    return round((datetime.now(tz=UTC).timestamp() - sent) * 1000, 1)


def _summary(topic: str, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    raw = payload.get("payload")
    inner: dict[str, Any] = raw if isinstance(raw, dict) else {}
    path, version = str(inner.get("path", "")), str(inner.get("version", ""))
    if event == "file:update":
        file_update_seen(topic, path, version)
        content = inner.get("content")
        size = len(content.encode("utf-8")) if isinstance(content, str) else None
        return {"path": path, "version": version, "size": size, "lag_ms": _lag_ms(inner.get("sent_at"))}
    if event == "file:synced":
        lag = file_synced_seen(topic, path, version)
        ack_ms = None if lag is None else round(lag * 1000, 1)
        keep = {k: inner.get(k) for k in ("path", "version", "sha256", "latency_ms")}
        return {**keep, "ack_lag_ms": ack_ms}
    if event in ("agent:log", "session:status", "file:delete"):
        return dict(inner)
    return {}


def mirror_summary(topic: str, event: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """What the operator views see of a broadcast on `project:{id}` (None for other topics); counts file
    updates and acks for the edit-to-ack figures on the way."""
    if not topic.startswith(PROJECT_TOPIC_PREFIX):
        return None
    return _summary(topic, event, payload)
