"""Websocket routes; the realtime issue adds the embedded endpoint and the operator streams."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
