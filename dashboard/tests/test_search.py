"""Search that finds: ids by the 8-character prefix the tables show (with or without dashes, any case), the
provider's machine id, part of a project name, a user; input that looks like an id but cannot be one says so.
Run with ``DATABASE_URL`` set to check PostgreSQL (an uuid compared as text) as well as SQLite."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.urls import reverse

from dashboard import selectors
from dashboard.search import canonical_prefix, search_parse
from machines.models import Machine
from sessions.models import PreviewSession
from sessions.testing import live_session


@pytest.mark.parametrize(
    ("typed", "prefix"),
    [
        ("1a2b3c4d", "1a2b3c4d"),
        ("1A2B3C4D5E", "1a2b3c4d-5e"),
        ("1a2b3c4d-5e6f", "1a2b3c4d-5e6f"),
        ("  1a2b3c4d5e6f4a1b8c2d3e4f5a6b7c8d ", "1a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d"),
    ],
)
def test_an_id_prefix_is_read_in_its_canonical_form(typed: str, prefix: str) -> None:
    assert search_parse(typed).id_prefix == prefix


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("abc12", "'abc12' is too short: type at least 6 characters of an id"),
        ("1a2b3c4g-5e6f-4a1b-8c2d-3e4f5a6b7c8d", "is not a valid id: g is not a hex digit"),
        ("1a2b-3c4d", "is not a valid id: its dashes are out of place"),
        ("1a2b3c4d5e6f4a1b8c2d3e4f5a6b7c8d00", "an id has 32 hex digits, not 34"),
    ],
)
def test_input_that_looks_like_an_id_but_cannot_be_one_says_why(typed: str, problem: str) -> None:
    terms = search_parse(typed)
    assert problem in terms.problem and terms.id_prefix == ""


@pytest.mark.parametrize("typed", ["cafe", "demo-1", "my project", ""])
def test_words_are_project_names_not_ids(typed: str) -> None:
    assert search_parse(typed).problem == "" and search_parse(typed).id_prefix == ""


def test_the_canonical_prefix_puts_the_dashes_where_a_uuid_has_them() -> None:
    digits = uuid.uuid4().hex
    assert canonical_prefix(digits) == str(uuid.UUID(digits))


@pytest.mark.django_db
class TestOnTheDatabase:
    def found(self, query: str = "", **filters: str) -> list[PreviewSession]:
        return list(selectors.session_search(query=query, **filters))

    def test_an_8_character_prefix_finds_a_session_its_user_and_its_machine(self) -> None:
        session, other = live_session(project="one"), live_session(project="two")
        assert session.machine_id is not None
        for ident in (session.id, session.user_id, session.machine_id):
            assert self.found(str(ident)[:8]) == [session], ident
            assert self.found(str(ident).upper().replace("-", "")[:12]) == [session], ident
        assert other not in self.found(str(session.id)[:8])

    def test_the_providers_machine_id_finds_its_session_whole_or_by_prefix(self) -> None:
        session = live_session()
        assert session.machine_id is not None
        Machine.objects.filter(id=session.machine_id).update(provider_machine_id="3d8d9e4c2e5e89")
        assert self.found("3d8d9e4c2e5e89") == [session]
        assert self.found("3d8d9e") == [session]
        assert self.found("3d8d9f") == []

    def test_part_of_a_project_name_finds_it(self) -> None:
        session = live_session(project="Checkout-Redesign")
        assert self.found("redesign") == [session]

    def test_the_user_filter_takes_a_prefix_and_refuses_nonsense(self) -> None:
        session = live_session()
        assert self.found(user=str(session.user_id)[:8]) == [session]
        assert self.found(user="not-a-user") == []

    def test_users_matching_a_prefix_are_listed(self) -> None:
        session = live_session()
        assert selectors.users_matching(search_parse(str(session.user_id)[:8])) == [session.user_id]


@pytest.mark.django_db
def test_the_page_says_an_id_is_too_short_instead_of_no_match(staff_client: Any) -> None:
    body = staff_client.get(reverse("dashboard:sessions"), {"q": "abc12"}).content.decode()
    assert "&#x27;abc12&#x27; is too short: type at least 6 characters of an id" in body


@pytest.mark.django_db
def test_a_whole_id_jumps_to_its_session_or_its_user(staff_client: Any) -> None:
    session = live_session()
    url = reverse("dashboard:sessions")
    assert staff_client.get(url, {"q": str(session.id)})["Location"] == reverse("dashboard:session", args=[session.id])
    assert staff_client.get(url, {"q": str(session.machine_id)})["Location"].endswith(f"{session.id}/")
    user_page = reverse("dashboard:user", args=[session.user_id])
    assert staff_client.get(url, {"q": session.user_id.hex})["Location"] == user_page
