"""The stylesheet's focus ring, measured: WCAG 1.4.11 asks 3:1 against every background it is seen on."""

import re
from pathlib import Path

from django.conf import settings

CSS = (Path(settings.BASE_DIR) / "dashboard" / "static" / "dashboard" / "dashboard.css").read_text()
HEADER = "#102a43"


def variable(name: str) -> str:
    match = re.search(rf"--{name}:\s*#([0-9a-f]{{6}}|[0-9a-f]{{3}})\b", CSS)
    assert match, name
    digits = match.group(1)
    return "#" + (digits if len(digits) == 6 else "".join(d * 2 for d in digits))


def luminance(colour: str) -> float:
    """Relative luminance (WCAG 2.x) of ``#rrggbb``."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_focus_ring_reaches_three_to_one_on_the_page_the_cards_and_the_header() -> None:
    ring, ring_on_dark = variable("focus"), variable("focus-on-dark")
    light = (variable("bg"), variable("card"), "#f0f4f8")
    assert [bg for bg in light if contrast(ring, bg) < 3] == []
    assert HEADER in CSS and contrast(ring_on_dark, HEADER) >= 3
    assert round(contrast("#f0b429", "#ffffff"), 2) == 1.86  # the old ring, for the record: why it changed


def test_the_header_uses_the_dark_ring() -> None:
    assert re.search(r"\.top a:focus-visible[^{]*\{ outline-color: var\(--focus-on-dark\)", CSS)
