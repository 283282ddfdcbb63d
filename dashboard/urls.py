from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sessions/", views.session_list, name="sessions"),
    path("sessions/<uuid:session_id>/", views.session_detail, name="session"),
    path("sessions/<uuid:session_id>/end/", views.session_end, name="session-end"),
    path("machines/", views.machine_list, name="machines"),
    path("machines/<uuid:machine_id>/kill/", views.machine_kill, name="machine-kill"),
    path("costs/", views.costs, name="costs"),
    path("costs.csv", views.costs_csv, name="costs-csv"),
    path("audit/", views.audit, name="audit"),
    path("playground/", views.playground_page, name="playground"),
]
