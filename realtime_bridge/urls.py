"""HTTP routes under ``/realtime/v1/``; the realtime issue adds the REST broadcast endpoint."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
