from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from sessions import api
from sessions.errors import api_not_found

urlpatterns = [
    path("sessions/", api.SessionListCreateApi.as_view(), name="session-list"),
    path("sessions/<uuid:session_id>/", api.SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<uuid:session_id>/heartbeat/", api.SessionHeartbeatApi.as_view(), name="session-heartbeat"),
    path("sessions/<uuid:session_id>/extend/", api.SessionExtendApi.as_view(), name="session-extend"),
    path("quota/", api.OwnQuotaApi.as_view(), name="quota"),
    path("quotas/<uuid:user_id>/", api.UserQuotaApi.as_view(), name="user-quota"),
    path("policy/", api.PolicyApi.as_view(), name="policy"),
    path("policy/dry-run/", api.PolicyDryRunApi.as_view(), name="policy-dry-run"),
    path("policy/apply/", api.PolicyApplyApi.as_view(), name="policy-apply"),
    path("projects/", api.ProjectListApi.as_view(), name="project-list"),
    path("projects/<str:project_id>/", api.ProjectDetailApi.as_view(), name="project-detail"),
    path("projects/<str:project_id>/members/", api.ProjectMembersApi.as_view(), name="project-members"),
    path("projects/<str:project_id>/members/<uuid:user_id>/", api.ProjectMemberApi.as_view(), name="project-member"),
    path("agent/events/", api.AgentEventApi.as_view(), name="agent-events"),
    path("agent/assignment/", api.AgentAssignmentApi.as_view(), name="agent-assignment"),
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[]),
        name="api-docs",
    ),
    re_path(r"^.*$", api_not_found),
]
