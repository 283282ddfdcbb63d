"""The dashboard's formatting filters (pure): one time format, in UTC, with the zone said."""

from datetime import UTC, datetime, timedelta, timezone

import time_machine
from django.template import Context, Template

from dashboard.templatetags.dashboard import relative, time_html, utc_text

NOW = datetime(2026, 12, 1, 17, 48, 9, 250000, tzinfo=UTC)


def test_a_moment_in_any_zone_is_written_in_utc_and_says_so() -> None:
    paris = timezone(timedelta(hours=1))
    assert utc_text(datetime(2026, 12, 1, 18, 45, 9, tzinfo=paris)) == "2026-12-01 17:45:09 UTC"
    assert utc_text(NOW, precise=True) == "2026-12-01 17:48:09.250 UTC"


def test_the_relative_time_takes_the_largest_whole_unit_both_ways() -> None:
    cases = {
        timedelta(0): "just now",
        timedelta(seconds=-42): "42 s ago",
        timedelta(minutes=-3, seconds=-59): "3 min ago",
        timedelta(hours=-5): "5 h ago",
        timedelta(days=-2, hours=-3): "2 d ago",
        timedelta(minutes=12): "in 12 min",
    }
    assert {offset: relative(NOW + offset, NOW) for offset in cases} == cases


def test_the_time_element_carries_the_iso_moment_and_the_age_on_hover() -> None:
    at = NOW - timedelta(minutes=3)
    assert time_html(at, now=NOW) == (
        '<time datetime="2026-12-01T17:45:09Z" title="3 min ago">2026-12-01 17:45:09 UTC</time>'
    )
    assert time_html(at, now=NOW, beside=True).endswith('</time> <span class="ago">(3 min ago)</span>')
    assert 'datetime="2026-12-01T17:45:09.250Z"' in time_html(at, now=NOW, precise=True)


def test_templates_use_it_through_the_when_filter_and_an_absent_moment_is_a_dash() -> None:
    template = Template('{% load dashboard %}{{ at|when:"ago" }}|{{ missing|when }}')
    with time_machine.travel(NOW, tick=False):
        text = template.render(Context({"at": NOW - timedelta(hours=2), "missing": None}))
    assert text == (
        '<time datetime="2026-12-01T15:48:09Z" title="2 h ago">2026-12-01 15:48:09 UTC</time>'
        ' <span class="ago">(2 h ago)</span>|\u2013'
    )
