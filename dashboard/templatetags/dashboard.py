"""Formatting filters for the operator dashboard."""

from __future__ import annotations

from decimal import Decimal

from django import template

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
