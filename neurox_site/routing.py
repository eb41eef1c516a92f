"""Websocket routes; consumers use the same selectors as the views."""

from django.urls import path

from analysis.runs.consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
]
