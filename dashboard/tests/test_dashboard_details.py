"""Details of the dashboard's pages: every time in the one UTC format, an ended session's preview no longer a
link, an empty timeline said in words, tables in their own scroll box, the playground's Stop."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from sessions.models import EndReason
from sessions.services import session_end
from sessions.testing import live_session

pytestmark = pytest.mark.django_db

UTC_TIME = re.compile(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z" title="[^"]+">[-\d :.]+ UTC</time>')


def test_every_time_on_the_session_pages_is_one_utc_format(staff_client: Any) -> None:
    session = live_session()
    for url in (reverse("dashboard:session", args=[session.id]), reverse("dashboard:sessions")):
        body = staff_client.get(url).content.decode()
        times = re.findall(r"<time\b[^>]*>.*?</time>", body)
        assert times, url
        assert all(UTC_TIME.fullmatch(time) for time in times), (url, times)


def test_the_overview_says_how_long_ago_a_live_session_was_created(staff_client: Any) -> None:
    session = live_session()
    body = staff_client.get(reverse("dashboard:overview")).content.decode()
    row = body[body.index(f'data-session="{session.id}"') :]
    assert re.search(r' UTC</time> <span class="ago">\((just now|\d+ s ago)\)</span>', row)


def test_an_ended_sessions_preview_url_is_shown_but_not_a_link(staff_client: Any) -> None:
    session = live_session()
    url = reverse("dashboard:session", args=[session.id])
    assert f'<a href="{session.preview_url}">' in staff_client.get(url).content.decode()
    session_end(session=session, reason=EndReason.USER, now=timezone.now())
    body = staff_client.get(url).content.decode()
    assert f'<a href="{session.preview_url}">' not in body
    assert f'<span class="gone">{session.preview_url}</span>' in body and "the session ended" in body


def test_a_session_without_a_machine_says_so_in_a_sentence_not_a_numbered_item(staff_client: Any) -> None:
    session = live_session()
    session.machine.events.all().delete()  # type: ignore[union-attr]
    body = staff_client.get(reverse("dashboard:session", args=[session.id])).content.decode()
    assert "<p>No machine yet.</p>" in body and "<li>No machine yet.</li>" not in body


@pytest.mark.parametrize("name", ["overview", "sessions", "machines", "costs", "audit"])
def test_every_table_sits_in_its_own_scroll_box(staff_client: Any, name: str) -> None:
    live_session()
    body = staff_client.get(reverse(f"dashboard:{name}")).content.decode()
    assert body.count("<table") >= 1
    assert body.count("<table") == len(re.findall(r'<div class="table-scroll">\s*<table', body)), name


def test_the_playground_has_a_stop_button_and_says_leaving_ends_the_session(staff_client: Any) -> None:
    body = staff_client.get(reverse("dashboard:playground")).content.decode()
    assert 'id="pg-stop"' in body and "Stop session" in body and "leaving this page does too" in body
