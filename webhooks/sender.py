"""One delivery attempt over HTTP: the Standard Webhooks headers signed with the endpoint's secrets, the host
resolved and checked at this moment (``ssrf``), the request sent to the checked address, no redirect followed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import httpx
from standardwebhooks import Webhook

from webhooks.ssrf import IPAddress, Target, UnsafeUrl, resolve_checked, url_target

USER_AGENT = "Velocity-Webhooks/1"
ERROR_MAX = 300


@dataclass(frozen=True)
class Outcome:
    ok: bool
    response_code: int | None = None
    latency_ms: int | None = None
    error: str = ""


def signed_headers(*, secrets: list[str], msg_id: str, body: str, at: datetime) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (one ``v1,...`` per secret)."""
    signatures = " ".join(Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body) for secret in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signatures}


def pinned_url(target: Target, ip: IPAddress) -> str:
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{target.scheme}://{host}:{target.port}{target.path}"


def host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def send(*, url: str, headers: dict[str, str], body: str, allow_private: bool, timeout: float) -> Outcome:
    """POST ``body`` to ``url``: a 2xx is delivered; anything else (a redirect included) is an error to retry."""
    try:
        target = url_target(url)
        ip = resolve_checked(target, allow_private=allow_private)
    except UnsafeUrl as exc:
        return Outcome(ok=False, error=str(exc)[:ERROR_MAX])
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    all_headers = {**headers, "content-type": "application/json", "user-agent": USER_AGENT, "host": host_header(target)}
    started = time.monotonic()
    try:
        # trust_env=False: no proxy from the environment, which would connect to the name, not the checked address.
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = client.post(pinned_url(target, ip), content=body, headers=all_headers, extensions=extensions)
    except httpx.HTTPError as exc:
        return Outcome(ok=False, latency_ms=_ms(started), error=f"{type(exc).__name__}: {exc}"[:ERROR_MAX])
    return _outcome(response, _ms(started))


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _outcome(response: httpx.Response, latency_ms: int) -> Outcome:
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(ok=True, response_code=code, latency_ms=latency_ms)
    if 300 <= code < 400:
        where = response.headers.get("location", "")
        error = f"HTTP {code}: redirects are not followed ({where})"
    else:
        error = f"HTTP {code}"
    return Outcome(ok=False, response_code=code, latency_ms=latency_ms, error=error[:ERROR_MAX])
