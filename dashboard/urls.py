from django.urls import path

from dashboard import policy_views, views, webhook_pages

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sessions/", views.session_list, name="sessions"),
    path("sessions/<uuid:session_id>/", views.session_detail, name="session"),
    path("sessions/<uuid:session_id>/end/", views.session_end, name="session-end"),
    path("users/<uuid:user_id>/", views.user_detail, name="user"),
    path("users/<uuid:user_id>/quota/", views.user_quota, name="user-quota"),
    path("users/<uuid:user_id>/quota/reset/", views.user_quota_reset, name="user-quota-reset"),
    path("users/<uuid:user_id>/<slug:action>/", views.user_action, name="user-action"),
    path("machines/", views.machine_list, name="machines"),
    path("machines/<uuid:machine_id>/kill/", views.machine_kill, name="machine-kill"),
    path("costs/", views.costs, name="costs"),
    path("costs.csv", views.costs_csv, name="costs-csv"),
    path("audit/", views.audit, name="audit"),
    path("policy/", policy_views.policy_page, name="policy"),
    path("policy/apply/", policy_views.policy_apply, name="policy-apply"),
    path("playground/", views.playground_page, name="playground"),
    path("webhooks/", webhook_pages.webhook_list, name="webhooks"),
    path("webhooks/<uuid:endpoint_id>/", webhook_pages.webhook_detail, name="webhook"),
    path("webhooks/<uuid:endpoint_id>/rotate/", webhook_pages.webhook_rotate, name="webhook-rotate"),
    path("webhooks/<uuid:endpoint_id>/delete/", webhook_pages.webhook_delete, name="webhook-delete"),
    path(
        "webhooks/deliveries/<uuid:delivery_id>/redeliver/",
        webhook_pages.webhook_redeliver,
        name="webhook-redeliver",
    ),
]
