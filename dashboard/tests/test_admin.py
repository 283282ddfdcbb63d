"""The admin through the Django test client: the machines list and the kill action with its confirmation, the
sessions' end action and read-only status, the flags' actions, and the way back to the dashboard."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from dashboard.models import AuditRecord
from machines.models import Machine, MachineEvent
from machines.testing.fly_fake import FakeFly
from machines.tests.factories import machine_with_history
from sessions import services
from sessions.models import FlagScope, PreviewSession, PreviewTarget, SessionStatus
from sessions.testing import live_session

pytestmark = pytest.mark.django_db


def fly_machine_with_session(fly_api: FakeFly) -> tuple[Machine, PreviewSession]:
    now = timezone.now()
    provider_id = fly_api.add_machine("velocity-x", metadata={"velocity_managed": "true"})
    machine = machine_with_history(
        [("created", now - timedelta(minutes=5)), ("started", now - timedelta(minutes=4))],
        provider="fly",
        provider_machine_id=provider_id,
        region="iad",
        assigned_at=now - timedelta(minutes=5),
    )
    session = PreviewSession.objects.create(
        user_id=uuid.uuid4(), project_id="p", machine=machine, status=SessionStatus.ACTIVE
    )
    return machine, session


def test_the_kill_action_asks_for_confirmation_and_changes_nothing_yet(admin_client: Client, fly_api: FakeFly) -> None:
    machine, session = fly_machine_with_session(fly_api)
    response = admin_client.post(
        "/admin/machines/machine/", {"action": "kill_machines", "_selected_action": [str(machine.id)]}
    )
    assert response.status_code == 200
    assert b"Kill machines?" in response.content and str(session.id).encode() in response.content
    machine.refresh_from_db()
    assert machine.state == "started"
    assert fly_api.calls("destroy") == []
    assert not AuditRecord.objects.exists()


def test_confirming_the_kill_destroys_the_machine_ends_the_session_and_audits_the_operator(
    admin_client: Client, admin_user: User, fly_api: FakeFly
) -> None:
    machine, session = fly_machine_with_session(fly_api)
    response = admin_client.post(
        "/admin/machines/machine/",
        {"action": "kill_machines", "_selected_action": [str(machine.id)], "post": "yes"},
        follow=True,
    )
    assert b"Killed 1 machine(s)" in response.content
    machine.refresh_from_db()
    session.refresh_from_db()
    assert machine.state == "destroyed"
    assert fly_api.machines[machine.provider_machine_id]["state"] == "destroyed"
    assert (session.status, session.end_reason) == ("ended", "operator")
    assert MachineEvent.objects.filter(machine=machine, to_state="destroying", source="operator").exists()
    record = AuditRecord.objects.get()
    assert (record.actor, record.action, record.target_id) == (admin_user, "machine.kill", str(machine.id))
    assert record.before["state"] == "started" and record.after == {"state": "destroyed", "sessions_ended": 1}


def test_the_machines_list_shows_cost_and_owner_without_a_query_per_machine(
    admin_client: Client, django_assert_max_num_queries: object
) -> None:
    now = timezone.now()
    for _ in range(8):
        machine = machine_with_history([("created", now - timedelta(hours=1)), ("started", now - timedelta(hours=1))])
        PreviewSession.objects.create(user_id=uuid.uuid4(), project_id=uuid.uuid4().hex, machine=machine)
    with django_assert_max_num_queries(12):  # type: ignore[operator]
        response = admin_client.get("/admin/machines/machine/")
    assert response.status_code == 200
    assert response.content.count(b"shared-cpu-1x 512 MB") == 8
    assert b"1:00:0" in response.content  # an uptime of about an hour


def test_the_end_action_ends_the_session_through_the_service_and_audits_it(
    admin_client: Client, admin_user: User
) -> None:
    session = live_session()
    url = "/admin/preview_sessions/previewsession/"
    response = admin_client.post(url, {"action": "end_sessions", "_selected_action": [str(session.id)]}, follow=True)
    assert b"Ended 1 session(s)." in response.content
    session.refresh_from_db()
    assert (session.status, session.end_reason) == ("ended", "operator")
    assert session.machine is not None and session.machine.state == "destroyed"
    assert list(AuditRecord.objects.values_list("action", "actor")) == [("session.end", admin_user.pk)]


def test_only_a_finished_session_is_deleted_and_through_the_service(admin_client: Client, admin_user: User) -> None:
    session = live_session()
    delete_url = f"/admin/preview_sessions/previewsession/{session.id}/delete/"
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403  # live: end it first
    services.session_end(session=session, reason="user", now=timezone.now())
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not PreviewSession.objects.filter(id=session.id).exists()
    assert list(AuditRecord.objects.values_list("action", "actor")) == [("session.delete", admin_user.pk)]


def test_a_running_machines_row_cannot_be_deleted(admin_client: Client) -> None:
    machine = live_session().machine
    assert machine is not None
    response = admin_client.post(f"/admin/machines/machine/{machine.id}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Machine.objects.filter(id=machine.id).exists()


def test_a_sessions_form_is_view_only_and_a_post_changes_nothing(admin_client: Client) -> None:
    session = live_session()
    url = f"/admin/preview_sessions/previewsession/{session.id}/change/"
    page = admin_client.get(url).content.decode()
    assert str(session.project_id) in page and "active" in page  # inspectable
    assert 'name="status"' not in page and 'name="expires_at_0"' not in page and 'name="machine"' not in page
    response = admin_client.post(url, {"status": "ended", "end_reason": "operator", "user_id": str(uuid.uuid4())})
    assert response.status_code == 403
    session.refresh_from_db()
    assert session.status == "active" and session.machine is not None and session.machine.state == "started"
    assert not AuditRecord.objects.exists()


def test_a_live_rows_page_links_to_ending_or_killing_it_through_the_dashboard(admin_client: Client) -> None:
    session = live_session()
    page = admin_client.get(f"/admin/preview_sessions/previewsession/{session.id}/change/").content.decode()
    assert f'href="/dashboard/sessions/{session.id}/end/"' in page
    page = admin_client.get(f"/admin/machines/machine/{session.machine_id}/change/").content.decode()
    assert f'href="/dashboard/machines/{session.machine_id}/kill/"' in page
    services.session_end(session=session, reason="user", now=timezone.now())
    page = admin_client.get(f"/admin/preview_sessions/previewsession/{session.id}/change/").content.decode()
    assert "/end/" not in page and f'href="/dashboard/sessions/{session.id}/"' in page


def test_a_machines_state_cannot_be_set_in_its_form(admin_client: Client) -> None:
    machine = live_session().machine
    assert machine is not None
    url = f"/admin/machines/machine/{machine.id}/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="state"' not in page and 'name="provider_machine_id"' not in page
    assert admin_client.post(url, {"state": "destroyed"}).status_code == 403
    machine.refresh_from_db()
    assert machine.state == "started"


def test_a_machines_row_is_kept_even_once_the_machine_is_gone(admin_client: Client) -> None:
    machine = machine_with_history([("created", timezone.now()), ("destroyed", timezone.now())])
    assert admin_client.post(f"/admin/machines/machine/{machine.id}/delete/", {"post": "yes"}).status_code == 403
    assert Machine.objects.filter(id=machine.id).exists()  # its events are the cost history


def test_sessions_and_machines_have_no_bulk_delete_and_sessions_are_not_added_by_hand(admin_client: Client) -> None:
    for url in ("/admin/preview_sessions/previewsession/", "/admin/machines/machine/"):
        assert b'value="delete_selected"' not in admin_client.get(url).content
    assert admin_client.get("/admin/preview_sessions/previewsession/add/").status_code == 403


def test_view_site_leads_to_the_dashboard(admin_client: Client) -> None:
    assert b'href="/dashboard/"' in admin_client.get("/admin/").content
    assert admin_client.get("/dashboard/").status_code == 200


def test_operators_flip_flags_in_the_admin(admin_client: Client, admin_user: User) -> None:
    flag = services.preview_flag_set(scope=FlagScope.EVERYONE, target=PreviewTarget.NEW)
    url = "/admin/preview_sessions/previewflag/"
    response = admin_client.post(url, {"action": "route_to_legacy", "_selected_action": [str(flag.id)]}, follow=True)
    assert response.status_code == 200
    flag.refresh_from_db()
    assert flag.target == PreviewTarget.LEGACY
    assert admin_client.get(url).status_code == 200
    record = AuditRecord.objects.get()
    assert (record.action, record.actor, record.before["target"], record.after["target"]) == (
        "flag.route",
        admin_user,
        "new",
        "legacy",
    )


def test_machine_events_read_as_sentences_in_the_admin_too(admin_client: Client) -> None:
    machine = live_session().machine
    assert machine is not None
    session_id = uuid.uuid4()
    MachineEvent.objects.create(
        machine=machine,
        from_state="started",
        to_state="started",
        source="pool",
        detail={"claimed_by_session": str(session_id)},
    )
    listing = admin_client.get("/admin/machines/machineevent/").content.decode()
    assert (
        f'claimed by session <a href="/dashboard/sessions/{session_id}/"><code>{str(session_id)[:8]}</code></a>'
        in listing
    )
    inline = admin_client.get(f"/admin/machines/machine/{machine.id}/change/").content.decode()
    assert "claimed by session" in inline and "{&#x27;claimed_by_session&#x27;" not in inline
