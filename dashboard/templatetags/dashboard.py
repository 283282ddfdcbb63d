"""Formatting filters for the operator dashboard."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.html import format_html
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
