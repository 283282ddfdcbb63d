"""Preview hosts (``<session id>.<PREVIEW_HOST_SUFFIX>``) and the registrable domains that keep them apart.

A preview runs strangers' code. Browsers scope cookies and ``SameSite`` by registrable domain (eTLD+1 by
the Public Suffix List, private section included, as browsers read it), so previews must live on a
registrable domain the orchestrator does not share, and nothing of the orchestrator may answer on a
preview host. The list is the copy bundled with ``publicsuffixlist``: never fetched at run time.
"""

from __future__ import annotations

import functools
import ipaddress
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port
from publicsuffixlist import PublicSuffixList


def normalize_host(raw: str) -> str:
    """A Host header as Django matches it: lower case, no port, no trailing dot (``a.example.`` is ``a.example``)."""
    domain, _port = split_domain_port(raw)
    return domain


def is_preview_host(host: str) -> bool:
    """``host`` (normalized) is the preview suffix or below it: only the preview route may answer there."""
    suffix = settings.PREVIEW_HOST_SUFFIX
    return bool(suffix) and (host == suffix or host.endswith(f".{suffix}"))


def preview_session_id(host: str) -> uuid.UUID | None:
    """The session a preview host names: exactly one canonical UUID label right above the suffix."""
    label, _, rest = host.partition(".")
    if rest != settings.PREVIEW_HOST_SUFFIX:
        return None
    try:
        session_id = uuid.UUID(label)
    except ValueError:
        return None
    # uuid.UUID also reads hex without dashes or in braces: one preview gets one origin, not several.
    return session_id if str(session_id) == label else None


def scope_host(scope: dict[str, Any]) -> str:
    """The normalized Host of an ASGI connection ('' when it sent none)."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return normalize_host(value.decode("latin-1"))
    return ""


@functools.cache
def _public_suffix_list() -> PublicSuffixList:
    return PublicSuffixList()  # the bundled list; parsing it takes a few milliseconds, once


def registrable_domain(host: str) -> str:
    """eTLD+1 of ``host`` (``velocity.example.com`` → ``example.com``, ``a.github.io`` → itself).

    An IP address, ``localhost`` or a bare public suffix has no registrable domain: browsers treat
    such a host as a site of its own, and so does this.
    """
    host = host.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _public_suffix_list().privatesuffix(host) or host
    return host


def orchestrator_hosts() -> list[str]:
    """The hosts the orchestrator answers on: ORCHESTRATOR_URL's and ALLOWED_HOSTS' but the preview wildcard."""
    hosts = [urlsplit(settings.ORCHESTRATOR_URL).hostname or ""]
    hosts += [_allowed_host_domain(entry) for entry in _orchestrator_entries(settings.ALLOWED_HOSTS)]
    return sorted({h for h in hosts if h})


def _orchestrator_entries(entries: Iterable[str]) -> list[str]:
    wildcard = f".{settings.PREVIEW_HOST_SUFFIX}"
    # "*" names no host in particular; the preview wildcard is the previews' own.
    cleaned = (e.strip().lower() for e in entries)
    return [e for e in cleaned if e not in ("", "*", wildcard)]


def _allowed_host_domain(entry: str) -> str:
    # ".example.com" allows example.com and its subdomains: its site is example.com's.
    return normalize_host(entry.lstrip(".")) or entry.strip("[]")
