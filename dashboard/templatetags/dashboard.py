"""Formatting filters and tags for the operator dashboard."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django import template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()
EMPTY = "\u2013"  # an en dash: "no value"


@register.filter
def usd(value: Decimal | float | None) -> str:
    """Dollars: cents above a dollar, four decimals below it (single machines cost fractions of a cent)."""
    if value is None:
        return EMPTY
    amount = Decimal(str(value))
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.4f}"


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return EMPTY
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@register.filter
def percent(fraction: float | None) -> str:
    return EMPTY if fraction is None else f"{fraction * 100:.1f}%"


@register.filter
def ms(value: float | None) -> str:
    return EMPTY if value is None else f"{value:.0f} ms"


@register.filter
def get(mapping: dict[str, object], key: str) -> object:
    return mapping.get(key, 0)


@register.simple_tag
def user_link(user_id: uuid.UUID | str | None, empty: str = "warm pool") -> SafeString:
    """A user id as the tables show it (its first 8 characters, the whole id on hover) linking to their page."""
    if not user_id:
        return format_html("{}", empty)
    text = str(user_id)
    url = reverse("dashboard:user", args=[text])
    return format_html('<a href="{}" title="user {}"><code>{}</code></a>', url, text, text[:8])


# How each key of a machine event's ``detail`` reads in a sentence; unknown keys read "key: value".
EVENT_PHRASES = {
    "actor": "by {}",
    "reason": "{}",
    "error": "error: {}",
    "session_end_reason": "its session ended ({})",
}


@register.simple_tag
def event_sentence(detail: Mapping[str, Any] | None) -> SafeString:
    """A machine event's detail as words: ``{'claimed_by_session': …}`` → "claimed by session 1a2b3c4d"."""
    parts = [_event_part(key, value) for key, value in (detail or {}).items() if value not in (None, "")]
    return format_html_join("; ", "{}", ((part,) for part in parts))


def _event_part(key: str, value: Any) -> SafeString:
    if key == "restarted" and value is True:  # machine_restart: the agent watch restarted a hung agent
        return format_html("{}", "restarted by the agent watch")
    if key == "claimed_by_session" and _is_uuid(value):
        url = reverse("dashboard:session", args=[str(value)])
        return format_html('claimed by session <a href="{}"><code>{}</code></a>', url, str(value)[:8])
    phrase = EVENT_PHRASES.get(key)
    if phrase is not None:
        return format_html(phrase, _plain(value))
    return format_html("{}: {}", key.replace("_", " "), _plain(value))


def _plain(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{key.replace('_', ' ')} {item}" for key, item in value.items())
    return str(value)


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@register.filter
def attr(obj: object, name: str) -> object:
    """A field of an object by name (a quota's limit beside its form field)."""
    return getattr(obj, name, EMPTY)


# --- time: one format everywhere, in UTC, with the zone said -------------------------------------------

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def utc_text(at: datetime, *, precise: bool = False) -> str:
    """``2026-12-01 17:45:09 UTC`` (``precise``: with milliseconds), whatever zone ``at`` is in; live.js
    writes the same text for the rows it inserts."""
    moment = at.astimezone(UTC)
    millis = f".{moment.microsecond // 1000:03d}" if precise else ""
    return f"{moment.strftime(TIME_FORMAT)}{millis} UTC"


def utc_iso(at: datetime, *, precise: bool = False) -> str:
    """The machine-readable ``datetime`` attribute: ISO 8601 in UTC with a ``Z``."""
    spec = "milliseconds" if precise else "seconds"
    return at.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def relative(at: datetime, now: datetime) -> str:
    """``3 min ago`` or ``in 3 min``: the largest whole unit, so a glance tells the age."""
    seconds = round((now - at).total_seconds())
    if seconds == 0:
        return "just now"
    amount = abs(seconds)
    size, unit = next((size, unit) for size, unit in UNITS if amount >= size)
    text = f"{amount // size} {unit}"
    return f"{text} ago" if seconds > 0 else f"in {text}"


def time_html(at: datetime | None, *, now: datetime, precise: bool = False, beside: bool = False) -> str:
    """The ``<time>`` element: UTC text, the relative age on hover (``title``) and, with ``beside``, shown."""
    if at is None:
        return EMPTY
    ago = relative(at, now)
    html = format_html(
        '<time datetime="{}" title="{}">{}</time>', utc_iso(at, precise=precise), ago, utc_text(at, precise=precise)
    )
    return format_html('{} <span class="ago">({})</span>', html, ago) if beside else html


@register.filter(is_safe=True)
def when(at: datetime | None, style: str = "") -> SafeString | str:
    """``{{ at|when }}`` in every dashboard template; ``when:"ago"`` shows the relative time beside it,
    ``when:"ms"`` adds milliseconds (event timelines)."""
    return time_html(at, now=timezone.now(), precise=style == "ms", beside=style == "ago")
