"""Websocket routes. Apps add their consumers here, e.g.
``path("ws/runs/<int:run_id>/", RunConsumer.as_asgi())``; consumers use the same selectors as the views."""

websocket_urlpatterns = []
