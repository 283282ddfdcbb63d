"""The webhooks' Prometheus metrics (exported with every other ``velocity_*`` metric by the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter(
    "velocity_webhook_attempts_total",
    "Webhook delivery attempts, by what the delivery became: delivered, retrying, dead.",
    ["result"],
)
LATENCY = Histogram(
    "velocity_webhook_latency_seconds",
    "How long a receiver took to answer a webhook delivery (attempts that got an answer).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def attempt_recorded(*, result: str, latency_ms: int | None, answered: bool) -> None:
    ATTEMPTS.labels(result=result).inc()
    if answered and latency_ms is not None:
        LATENCY.observe(latency_ms / 1000)
