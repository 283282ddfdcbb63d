"""Who may use a project, through the REST API: the registry, the projects API, and what a refusal leaves."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from sessions.access import Access, registry_access
from sessions.models import PreviewSession, Project, ProjectMember, Quota, SessionStatus
from sessions.tests.conftest import error_code
from velocity.auth import issue_token

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/sessions/"


def client_for(user_id: uuid.UUID | None = None, role: str = "authenticated") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(sub=user_id, role=role)}")
    return client


def create(client: APIClient, project_id: str) -> tuple[int, dict]:
    response = client.post(SESSIONS, {"project_id": project_id}, format="json")
    return response.status_code, response.json()


def test_the_first_session_claims_an_unknown_project_for_its_user() -> None:
    owner = uuid.uuid4()
    status, _ = create(client_for(owner), "fresh-app")
    assert status == 201
    assert Project.objects.get(project_id="fresh-app").owner_id == owner


def test_two_honest_users_naming_their_project_my_app_do_not_share_it() -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    assert create(client_for(alice), "my-app")[0] == 201
    status, body = create(client_for(bob), "my-app")
    assert (status, body["error"]["code"]) == (403, "project.forbidden")
    assert PreviewSession.objects.filter(user_id=bob).count() == 0


def test_the_refusal_is_the_same_for_a_foreign_project_and_a_viewer() -> None:
    owner, viewer, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    create(client_for(owner), "shared")
    ProjectMember.objects.create(project=Project.objects.get(project_id="shared"), user_id=viewer, role="viewer")
    refusals = [create(client_for(user), "shared")[1] for user in (viewer, stranger)]
    assert refusals[0] == refusals[1]
    assert refusals[0]["error"]["code"] == "project.forbidden"


def test_an_editor_member_previews_the_project_under_their_own_quota() -> None:
    owner, editor = uuid.uuid4(), uuid.uuid4()
    create(client_for(owner), "team-app")
    ProjectMember.objects.create(project=Project.objects.get(project_id="team-app"), user_id=editor, role="editor")
    status, body = create(client_for(editor), "team-app")
    assert (status, body["user_id"]) == (201, str(editor))


def test_a_quota_refusal_leaves_no_project_and_no_session_behind() -> None:
    user = uuid.uuid4()
    Quota.objects.create(user_id=user, max_concurrent_sessions=0)
    status, body = create(client_for(user), "never-made")
    assert (status, body["error"]["code"]) == (429, "quota.concurrent_sessions")
    assert not Project.objects.filter(project_id="never-made").exists()
    assert not PreviewSession.objects.filter(user_id=user).exists()


def test_a_user_with_a_live_session_who_lost_access_gets_no_session_back() -> None:
    owner, former = uuid.uuid4(), uuid.uuid4()
    create(client_for(owner), "app")
    project = Project.objects.get(project_id="app")
    member = ProjectMember.objects.create(project=project, user_id=former, role="editor")
    assert create(client_for(former), "app")[0] == 201
    member.delete()
    assert create(client_for(former), "app")[0] == 403


def test_the_registry_answers_by_role() -> None:
    owner, editor, viewer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    project = Project.objects.create(project_id="roles", owner_id=owner)
    ProjectMember.objects.create(project=project, user_id=editor, role="editor")
    ProjectMember.objects.create(project=project, user_id=viewer, role="viewer")
    answers = [registry_access(user, "roles") for user in (owner, editor, viewer, uuid.uuid4())]
    assert answers == [Access.WRITE, Access.WRITE, Access.READ, Access.NONE]
    assert registry_access(owner, "unknown") == Access.NONE


def test_the_service_role_manages_owners_and_members_and_every_change_is_audited(audits: list[dict]) -> None:
    service, owner, member = client_for(role="service_role"), uuid.uuid4(), uuid.uuid4()
    created = service.put("/api/v1/projects/acme:site/", {"owner_id": str(owner)}, format="json")
    assert (created.status_code, created.json()["owner_id"]) == (201, str(owner))
    added = service.post("/api/v1/projects/acme:site/members/", {"user_id": str(member)}, format="json")
    assert added.json() == {"user_id": str(member), "role": "editor", "created_at": added.json()["created_at"]}
    assert service.get("/api/v1/projects/acme:site/").json()["members"][0]["user_id"] == str(member)
    assert service.delete(f"/api/v1/projects/acme:site/members/{member}/").status_code == 204
    assert [(sent["action"], sent["actor_label"]) for sent in audits] == [
        ("project.owner", "service_role"),
        ("project.member", "service_role"),
        ("project.member_removed", "service_role"),
    ]


def test_users_see_their_own_projects_and_nobody_elses() -> None:
    owner, member, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    create(client_for(owner), "mine")
    ProjectMember.objects.create(project=Project.objects.get(project_id="mine"), user_id=member)
    assert [p["project_id"] for p in client_for(member).get("/api/v1/projects/").json()["results"]] == ["mine"]
    assert client_for(stranger).get("/api/v1/projects/").json()["count"] == 0
    foreign, unknown = (client_for(stranger).get(f"/api/v1/projects/{p}/") for p in ("mine", "nothing"))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == unknown.json()


def test_users_cannot_change_owners_or_members(as_user: Callable[..., APIClient], audits: list[dict]) -> None:
    owner = uuid.uuid4()
    create(client_for(owner), "kept")
    client = client_for(owner)
    refused = [
        client.put("/api/v1/projects/kept/", {"owner_id": str(uuid.uuid4())}, format="json"),
        client.post("/api/v1/projects/kept/members/", {"user_id": str(uuid.uuid4())}, format="json"),
        client.delete(f"/api/v1/projects/kept/members/{uuid.uuid4()}/"),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert Project.objects.get(project_id="kept").owner_id == owner and audits == []


def test_a_new_owner_takes_over_and_the_old_owners_sessions_end() -> None:
    old, new = uuid.uuid4(), uuid.uuid4()
    create(client_for(old), "handover")
    client_for(role="service_role").put("/api/v1/projects/handover/", {"owner_id": str(new)}, format="json")
    session = PreviewSession.objects.get(user_id=old)
    assert (session.status, session.end_detail) == (SessionStatus.ENDED, "project access removed")
    assert create(client_for(old), "handover")[0] == 403
    assert create(client_for(new), "handover")[0] == 201


def test_bad_project_ids_in_the_projects_api_are_refused() -> None:
    service = client_for(role="service_role")
    response = service.put("/api/v1/projects/../", {"owner_id": str(uuid.uuid4())}, format="json")
    assert (response.status_code, error_code(response)) == (400, "request.invalid")
    dots = service.put("/api/v1/projects/.../", {"owner_id": str(uuid.uuid4())}, format="json")
    assert (dots.status_code, error_code(dots)) == (400, "request.invalid")
    assert not Project.objects.exists()
