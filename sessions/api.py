"""The REST API the editor frontend (and the preview agents) talk to."""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from machines.services import machine_realtime_key
from sessions import selectors, services, wakeups
from sessions.access import ProjectAccessUnavailable, ProjectForbidden
from sessions.authentication import MachineCaller, MachineTokenAuthentication, TokenUser
from sessions.dry_run import Policy
from sessions.errors import ApiError
from sessions.models import EndReason, PreviewSession, Project
from sessions.permissions import IsMachine, IsServiceRole
from sessions.policy_selectors import live_policy, policy_dry_run, policy_errors
from sessions.projects import project_member_remove, project_member_set, project_set_owner
from sessions.schema import errors
from sessions.serializers import (
    PROJECT_ID_PATTERN,
    AgentAssignmentSerializer,
    AgentEventOutcomeSerializer,
    AgentEventSerializer,
    DryRunRequestSerializer,
    DryRunResultSerializer,
    HeartbeatSerializer,
    LivePolicySerializer,
    PolicyApplyResultSerializer,
    PolicySerializer,
    ProjectMemberSerializer,
    ProjectMemberWriteSerializer,
    ProjectOwnerSerializer,
    ProjectSerializer,
    QuotaLimitsSerializer,
    QuotaStatusSerializer,
    SessionCreateSerializer,
    SessionExtendSerializer,
    SessionSerializer,
)
from sessions.session_json import FIELDS, SessionRowsRenderer, page_rows, session_data
from velocity.auth import SERVICE_ROLE

# The error responses each view raises itself, for the schema; sessions.schema adds 401, 429 and the body errors.
SESSION_404 = "`not_found`: no such session, or another user's"
PROJECT_400 = "`request.invalid`: not a project id"
PROJECT_404 = "`not_found`: no such project, or one the caller may not see"
SERVICE_403 = "`auth.forbidden`: only the service role may do this"
NO_USER_400 = "`request.no_user`: a service-role token without `sub`"


def _session_or_404(request: Request, session_id: uuid.UUID) -> PreviewSession:
    session = selectors.session_get_for_user(request.user, session_id)
    if session is None:
        raise NotFound("no such session")
    return session


class SessionListCreateApi(generics.ListAPIView[PreviewSession]):
    serializer_class = SessionSerializer
    throttle_scope = "sessions"
    renderer_classes = [SessionRowsRenderer]

    def get_throttles(self) -> list[Any]:
        self.throttle_scope = "sessions_create" if self.request.method == "POST" else "sessions"
        return super().get_throttles()

    def get_queryset(self) -> Any:
        sessions = selectors.session_visible_to(self.request.user)
        params = self.request.query_params
        if any("\x00" in params.get(name, "") for name in ("status", "project_id")):
            return sessions.none()  # PostgreSQL text cannot hold NUL: no row can match, and the query would fail
        if params.get("status"):
            sessions = sessions.filter(status__in=params["status"].split(","))
        if params.get("project_id"):
            sessions = sessions.filter(project_id=params["project_id"])
        return sessions.order_by("-created_at", "-id")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The page as ``values()`` rows written by ``SessionRowsRenderer``: the same JSON as
        ``SessionSerializer``, at a fraction of its cost (docs/benchmarks.md, *REST under load*)."""
        rows = self.get_queryset().values(*FIELDS)
        page = self.paginate_queryset(rows)
        if page is None:  # pagination switched off: the whole list, as DRF's own list() would answer
            return Response(page_rows(list(rows)))
        return self.get_paginated_response(page_rows(page))

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="comma-separated statuses"),
            OpenApiParameter("project_id", str),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=SessionCreateSerializer,
        responses={
            200: OpenApiResponse(SessionSerializer, description="the caller's live session for the project"),
            201: OpenApiResponse(SessionSerializer, description="a new session, `creating`"),
            **errors(
                e400=f"`request.invalid` (`details.fields`), `request.malformed`, {NO_USER_400}",
                e403="`user.blocked`: an operator blocked this user's new previews; "
                "`project.forbidden`: the caller may not use this project",
                e429="`quota.concurrent_sessions`, `quota.monthly_seconds`, `quota.monthly_budget`, "
                "`quota.machine_size` (every reason in `details.reasons`), or `rate_limited` (`Retry-After`)",
                e503="`project.access_unavailable`: the Supabase backend could not be asked; retry",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        user = request.user
        assert isinstance(user, TokenUser)  # noqa: S101  (IsTokenUser guarantees it)
        if user.id is None:  # a service-role token without a subject speaks for nobody
            raise ApiError(
                status_code=400, code="request.no_user", message="a session needs a user: use a user's token"
            )
        serializer = SessionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            session, created = services.session_create(
                claims=user.claims,
                user_id=user.id,
                project_id=serializer.validated_data["project_id"],
                memory_mb=serializer.validated_memory_mb(),
                now=timezone.now(),
            )
        except services.UserBlocked as exc:
            raise ApiError(status_code=403, code="user.blocked", message=str(exc)) from exc
        except ProjectForbidden as exc:
            raise ApiError(status_code=403, code="project.forbidden", message="you may not use this project") from exc
        except ProjectAccessUnavailable as exc:
            raise ApiError(
                status_code=503,
                code="project.access_unavailable",
                message="project access cannot be checked right now; try again",
            ) from exc
        except services.QuotaExceeded as exc:
            first = exc.decision.reasons[0]
            raise ApiError(
                status_code=429, code=first["code"], message=first["message"], details={"reasons": exc.decision.reasons}
            ) from exc
        if created and session.machine_id is not None:
            session = _confirmed(session)
        return Response(session_data(session), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _confirmed(session: PreviewSession) -> PreviewSession:
    """A session that got a warm machine in its create, as it stands once its agent reported ``ready`` (then it
    reads ``active``), or after ``WARM_CONFIRM_MS`` (still ``creating``: the client follows it as usual)."""
    timeout = settings.WARM_CONFIRM_MS / 1000
    return wakeups.ready_wait(session.id, timeout=timeout, recheck=READY_RECHECK_SECONDS) or session


class SessionDetailApi(APIView):
    throttle_scope = "sessions"
    renderer_classes = [SessionRowsRenderer]

    @extend_schema(responses={200: SessionSerializer, **errors(e404=SESSION_404)})
    def get(self, request: Request, session_id: uuid.UUID) -> Response:
        return Response(session_data(_session_or_404(request, session_id)))

    @extend_schema(
        responses={
            200: OpenApiResponse(SessionSerializer, description="the session, ended (already ended: as it is)"),
            **errors(e404=SESSION_404),
        }
    )
    def delete(self, request: Request, session_id: uuid.UUID) -> Response:
        session = _session_or_404(request, session_id)
        services.session_end(session=session, reason=EndReason.USER, now=timezone.now())
        return Response(SessionSerializer(session).data)


class SessionHeartbeatApi(APIView):
    throttle_scope = "sessions"

    @extend_schema(
        request=None,
        responses={200: HeartbeatSerializer, **errors(e404=SESSION_404, e409="`session.ended`: the session is over")},
    )
    def post(self, request: Request, session_id: uuid.UUID) -> Response:
        session = _session_or_404(request, session_id)
        if not session.is_live:
            raise ApiError(status_code=409, code="session.ended", message="the session has ended")
        recorded = services.session_touch(session_id=session.id, source="heartbeat", now=timezone.now())
        session.refresh_from_db()
        return Response({**HeartbeatSerializer(session).data, "recorded": recorded})


class SessionExtendApi(APIView):
    """The owner's "keep my preview": ``expires_at`` pushed out, within the quota's session length."""

    throttle_scope = "sessions"

    @extend_schema(
        request=SessionExtendSerializer,
        responses={
            200: OpenApiResponse(SessionSerializer, description="the session with its new `expires_at`"),
            **errors(
                e404=SESSION_404,
                e409="`session.ended`: the session is over; `quota.session_length`: the new `expires_at` would "
                "pass the session's creation plus `max_session_seconds` (`details.limit_seconds`, "
                "`details.max_expires_at`, `details.requested_expires_at`)",
            ),
        },
    )
    def post(self, request: Request, session_id: uuid.UUID) -> Response:
        session = _session_or_404(request, session_id)
        serializer = SessionExtendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            session = services.session_extend(
                session_id=session.id,
                minutes=serializer.validated_data["minutes"],
                now=timezone.now(),
                actor_label=_caller_label(request),
            )
        except services.SessionNotLive as exc:
            raise ApiError(status_code=409, code="session.ended", message="the session has ended") from exc
        except services.ExtendPastCap as exc:
            raise ApiError(
                status_code=409,
                code="quota.session_length",
                message="that would keep the session past its quota's session length",
                details={
                    "limit_seconds": exc.limit_seconds,
                    "max_expires_at": exc.latest.isoformat(),
                    "requested_expires_at": exc.requested.isoformat(),
                },
            ) from exc
        return Response(SessionSerializer(session).data)


def _quota_status(user_id: uuid.UUID, memory_mb: int) -> dict[str, Any]:
    now = timezone.now()
    decision = selectors.quota_evaluate(user_id, now=now, memory_mb=memory_mb)
    return QuotaStatusSerializer(
        {
            "limits": decision.quota,
            "usage": decision.usage,
            "budget": selectors.budget_state_for_user(user_id, now=now),
            "can_create": decision.can_create,
            "reasons": decision.reasons,
        }
    ).data


class OwnQuotaApi(APIView):
    throttle_scope = "sessions"

    @extend_schema(responses={200: QuotaStatusSerializer, **errors(e400=NO_USER_400)})
    def get(self, request: Request) -> Response:
        user = request.user
        if not isinstance(user, TokenUser) or user.id is None:
            raise ApiError(
                status_code=400, code="request.no_user", message="quota belongs to a user: use a user's token"
            )
        return Response(_quota_status(user.id, settings.PREVIEW_MACHINE_MEMORY_MB))


class UserQuotaApi(APIView):
    permission_classes = [IsServiceRole]
    throttle_scope = "sessions"

    @extend_schema(responses={200: QuotaStatusSerializer, **errors(e403=SERVICE_403)})
    def get(self, request: Request, user_id: uuid.UUID) -> Response:
        return Response(_quota_status(user_id, settings.PREVIEW_MACHINE_MEMORY_MB))

    @extend_schema(
        request=QuotaLimitsSerializer,
        responses={
            200: OpenApiResponse(QuotaLimitsSerializer, description="the override, replaced"),
            201: OpenApiResponse(QuotaLimitsSerializer, description="the override, created"),
            **errors(e403=SERVICE_403),
        },
    )
    def put(self, request: Request, user_id: uuid.UUID) -> Response:
        serializer = QuotaLimitsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        quota, created = services.quota_set(
            user_id=user_id, values=dict(serializer.validated_data), actor_label=_actor(request)
        )
        return Response(
            QuotaLimitsSerializer(quota).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class AgentEventApi(APIView):
    authentication_classes = [MachineTokenAuthentication]
    permission_classes = [IsMachine]
    throttle_scope = "agent"
    one_hop_methods = frozenset({"POST"})  # every agent's reports, quick writes (an exit's machine goes later)

    @extend_schema(request=AgentEventSerializer, responses={202: AgentEventOutcomeSerializer})
    def post(self, request: Request) -> Response:
        assert isinstance(request.user, MachineCaller)  # noqa: S101  (IsMachine guarantees it)
        machine = request.user.machine
        serializer = AgentEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = services.session_handle_agent_event(machine=machine, event=serializer.event(), now=timezone.now())
        return Response({"outcome": outcome}, status=status.HTTP_202_ACCEPTED)


PROJECT_ID_RE = re.compile(PROJECT_ID_PATTERN)
ASSIGNMENT_MAX_WAIT_SECONDS = 25
# How often a held assignment request re-reads the database besides its wake-up (the cost of a lost one).
ASSIGNMENT_POLL_SECONDS = 0.1
# Likewise for a create waiting on its warm agent's `ready`.
READY_RECHECK_SECONDS = 0.02


class AgentAssignmentApi(APIView):
    """A warm machine's agent asks which project it serves: 204 until a session claims it, then 200.

    ``?wait=N`` (at most 25 s) holds the request open until the claim or the deadline, so a claimed
    machine learns its project within a fraction of a second without hammering the API.
    """

    authentication_classes = [MachineTokenAuthentication]
    permission_classes = [IsMachine]
    throttle_scope = "agent"
    held_methods = frozenset({"GET"})  # held up to 25 s: never on one of the web's few request threads

    @extend_schema(
        parameters=[OpenApiParameter("wait", int, description="seconds to wait for an assignment (max 25)")],
        responses={
            200: AgentAssignmentSerializer,
            204: OpenApiResponse(description="no session has claimed the machine yet"),
            **errors(e400="`request.invalid`: `wait` is not a finite number"),
        },
    )
    def get(self, request: Request) -> Response:
        assert isinstance(request.user, MachineCaller)  # noqa: S101  (IsMachine guarantees it)
        machine = request.user.machine
        session = wakeups.assignment_wait(machine.id, timeout=_wait_seconds(request), recheck=ASSIGNMENT_POLL_SECONDS)
        if session is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        realtime_key = machine_realtime_key(machine=machine, project_id=session.project_id)
        return Response(
            AgentAssignmentSerializer(
                {"project_id": session.project_id, "session_id": session.id, "realtime_key": realtime_key}
            ).data
        )


def _wait_seconds(request: Request) -> float:
    raw = request.query_params.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    # NaN compares false with everything: it would survive the clamp and make the deadline unreachable.
    if not math.isfinite(wait):
        raise ApiError(status_code=400, code="request.invalid", message="wait must be a number of seconds")
    return min(max(wait, 0.0), ASSIGNMENT_MAX_WAIT_SECONDS)


def _caller_label(request: Request) -> str:
    """The audit trail's name for the caller: ``user:<id>``, or the service role's name."""
    user: Any = request.user
    return _actor(request) if getattr(user, "is_service_role", False) else f"user:{user.id}"


def _actor(request: Request) -> str:
    """The audit trail's name for a service-role caller (its subject when the token has one)."""
    user: Any = request.user
    return f"{SERVICE_ROLE}:{user.id}" if getattr(user, "id", None) else SERVICE_ROLE


def _project_id(raw: str) -> str:
    if not PROJECT_ID_RE.fullmatch(raw) or set(raw) == {"."}:
        raise ApiError(status_code=400, code="request.invalid", message="not a project id")
    return raw


def _project_or_404(request: Request, project_id: str) -> Project:
    project = selectors.project_get_for_user(request.user, _project_id(project_id))
    if project is None:
        raise NotFound("no such project")
    return project


@extend_schema_view(
    get=extend_schema(
        parameters=[OpenApiParameter("owner_id", uuid.UUID)],
        responses={200: ProjectSerializer(many=True), **errors(e400="`request.invalid`: `owner_id` is not a UUID")},
    )
)
class ProjectListApi(generics.ListAPIView[Project]):
    """The projects the caller owns or is a member of (all of them for the service role)."""

    serializer_class = ProjectSerializer
    throttle_scope = "sessions"

    def get_queryset(self) -> Any:
        projects = selectors.project_visible_to(self.request.user)
        owner = self.request.query_params.get("owner_id")
        if owner:
            projects = projects.filter(owner_id=_uuid_param(owner, "owner_id"))
        return projects.order_by("project_id")


class ProjectDetailApi(APIView):
    throttle_scope = "sessions"

    def get_permissions(self) -> list[Any]:
        return [IsServiceRole()] if self.request.method == "PUT" else list(super().get_permissions())

    @extend_schema(responses={200: ProjectSerializer, **errors(e400=PROJECT_400, e404=PROJECT_404)})
    def get(self, request: Request, project_id: str) -> Response:
        return Response(ProjectSerializer(_project_or_404(request, project_id)).data)

    @extend_schema(
        request=ProjectOwnerSerializer,
        responses={
            200: OpenApiResponse(ProjectSerializer, description="the project, existing (its owner set)"),
            201: OpenApiResponse(ProjectSerializer, description="the project, created"),
            **errors(e400=f"`request.invalid`: the body, or {PROJECT_400}", e403=SERVICE_403),
        },
    )
    def put(self, request: Request, project_id: str) -> Response:
        serializer = ProjectOwnerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project, created = project_set_owner(
            project_id=_project_id(project_id),
            owner_id=serializer.validated_data["owner_id"],
            actor=_actor(request),
            now=timezone.now(),
        )
        project = selectors.project_get_for_user(request.user, project.project_id) or project
        return Response(
            ProjectSerializer(project).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class ProjectMembersApi(APIView):
    throttle_scope = "sessions"

    def get_permissions(self) -> list[Any]:
        return [IsServiceRole()] if self.request.method == "POST" else list(super().get_permissions())

    @extend_schema(responses={200: ProjectMemberSerializer(many=True), **errors(e400=PROJECT_400, e404=PROJECT_404)})
    def get(self, request: Request, project_id: str) -> Response:
        project = _project_or_404(request, project_id)
        return Response(ProjectMemberSerializer(project.members.all(), many=True).data)

    @extend_schema(
        request=ProjectMemberWriteSerializer,
        responses={
            200: ProjectMemberSerializer,
            **errors(
                e400=f"`request.invalid`: the body, or {PROJECT_400}",
                e403=SERVICE_403,
                e404=PROJECT_404,
                e409="`project.owner`: the owner is not a member",
            ),
        },
    )
    def post(self, request: Request, project_id: str) -> Response:
        project = _project_or_404(request, project_id)
        serializer = ProjectMemberWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if serializer.validated_data["user_id"] == project.owner_id:
            raise ApiError(status_code=409, code="project.owner", message="the owner is not a member")
        member = project_member_set(
            project=project, actor=_actor(request), now=timezone.now(), **serializer.validated_data
        )
        return Response(ProjectMemberSerializer(member).data)


class ProjectMemberApi(APIView):
    permission_classes = [IsServiceRole]
    throttle_scope = "sessions"

    @extend_schema(
        responses={
            204: OpenApiResponse(description="removed; their live sessions of the project end"),
            **errors(e400=PROJECT_400, e403=SERVICE_403, e404=f"{PROJECT_404}, or no such member"),
        }
    )
    def delete(self, request: Request, project_id: str, user_id: uuid.UUID) -> Response:
        project = _project_or_404(request, project_id)
        if not project_member_remove(project=project, user_id=user_id, actor=_actor(request), now=timezone.now()):
            raise NotFound("no such member")
        return Response(status=status.HTTP_204_NO_CONTENT)


def _uuid_param(raw: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(status_code=400, code="request.invalid", message=f"{name} must be a UUID") from None


# --- the policy dry-run: what a tighter idle timeout, TTL or concurrency limit would have changed ---------

POLICY_400 = (
    "`request.invalid` (`details.fields`), `request.malformed`: the body is not valid; "
    "`policy.invalid` (`details.fields`): a rule out of its range, or no rule at all"
)


def _policy(serializer: PolicySerializer) -> Policy:
    data = serializer.validated_data
    policy = Policy(data["idle_timeout_minutes"], data["ttl_minutes"], data["max_concurrent"])
    problems = policy_errors(policy)
    if problems:
        raise ApiError(status_code=400, code="policy.invalid", message="not a policy", details={"fields": problems})
    return policy


class PolicyApi(APIView):
    permission_classes = [IsServiceRole]
    throttle_scope = "sessions"

    @extend_schema(responses={200: LivePolicySerializer, **errors(e403=SERVICE_403)})
    def get(self, request: Request) -> Response:
        """The live idle timeout, TTL and concurrency limit (the default quota's and the applied policy's)."""
        return Response(LivePolicySerializer(live_policy()).data)


class PolicyDryRunApi(APIView):
    permission_classes = [IsServiceRole]
    throttle_scope = "sessions"

    @extend_schema(
        request=DryRunRequestSerializer,
        responses={200: DryRunResultSerializer, **errors(e400=POLICY_400, e403=SERVICE_403)},
    )
    def post(self, request: Request) -> Response:
        """Replay the last ``days`` of sessions under the policy: nothing changes."""
        serializer = DryRunRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = policy_dry_run(_policy(serializer), now=timezone.now(), days=serializer.validated_data["days"])
        return Response(DryRunResultSerializer(result).data)


class PolicyApplyApi(APIView):
    permission_classes = [IsServiceRole]
    throttle_scope = "sessions"

    @extend_schema(
        request=PolicySerializer,
        responses={200: PolicyApplyResultSerializer, **errors(e400=POLICY_400, e403=SERVICE_403)},
    )
    def post(self, request: Request) -> Response:
        """Make the policy live (audited): the idle timeout at once, the TTL and limit for new sessions."""
        serializer = PolicySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        before, after = services.policy_apply(policy=_policy(serializer), actor_label=_actor(request))
        return Response(PolicyApplyResultSerializer({"before": before, "after": after}).data)
