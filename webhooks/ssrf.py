"""Where a webhook may go: never to loopback, link-local, private, shared, multicast, unspecified or reserved
addresses (the orchestrator's own network, the cloud metadata service at 169.254.169.254...), unless
``WEBHOOKS_ALLOW_PRIVATE`` says so (tests and the local demo, whose receivers listen on 127.0.0.1).

Two moments check: registration refuses a URL whose literal host is such an address (a clear error at once),
and every delivery resolves the host again and checks every address it resolves to, then connects to the
address it checked (so a DNS answer that changes between check and connect cannot slip through).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCAL_NAMES = ("localhost", "localhost.localdomain")


class UnsafeUrl(ValueError):
    """The URL may not receive webhooks; the message says why (shown to the operator as is)."""


def address_refusal(ip: IPAddress) -> str:
    """Why ``ip`` may not receive webhooks, or "" when it may (pure)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_refusal(ip.ipv4_mapped)
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return f"{ip} is a {kind.replace('_', '-')} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return ""


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written, without brackets
    port: int
    path: str  # path and query, at least "/"


def url_target(url: str) -> Target:
    """The parts of an http(s) URL a delivery needs; UnsafeUrl when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise UnsafeUrl("the URL may not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("the URL's port is not a number from 1 to 65535") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path)


def registration_check(url: str, *, allow_private: bool) -> None:
    """Refuse at registration a URL whose literal host (an address, or ``localhost``) is never public."""
    target = url_target(url)
    if allow_private:
        return
    host = target.host.lower().rstrip(".")
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        raise UnsafeUrl(f"{target.host} is this machine: webhooks go to public addresses only")
    ip = literal_ip(host)
    why = address_refusal(ip) if ip is not None else ""
    if why:
        raise UnsafeUrl(f"{why}: webhooks go to public addresses only (WEBHOOKS_ALLOW_PRIVATE)")


def resolve_checked(target: Target, *, allow_private: bool) -> IPAddress:
    """Resolve the host now and check every address; the first one is where to connect."""
    ip = literal_ip(target.host)
    if ip is not None:
        addresses = [ip]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnsafeUrl(f"{target.host} does not resolve: {exc}") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private:
        for address in addresses:
            why = address_refusal(address)
            if why:
                raise UnsafeUrl(f"{target.host} resolves to {why}: refused (WEBHOOKS_ALLOW_PRIVATE)")
    return addresses[0]
