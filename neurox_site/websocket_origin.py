"""Websocket handshakes come only from this site's own pages.

Channels' ``AllowedHostsOriginValidator`` compares only the Origin's host with ``ALLOWED_HOSTS``, so a page served
by anything else on an allowed host (``http://localhost:9999``) could open a run's socket with a signed-in
person's cookie. This check, in front of it, also wants the scheme and the port: the Origin must be the origin
the socket was opened on (``http``/``https`` for ``ws``/``wss``, and the request's Host header), or one named in
``CSRF_TRUSTED_ORIGINS`` (e.g. a site reached through a proxy on another port).
"""

from __future__ import annotations

from channels.security.websocket import WebsocketDenier
from django.conf import settings


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def same_origin(scope) -> bool:
    origin, host = _header(scope, b"origin"), _header(scope, b"host")
    if not origin or not host:
        return False
    own = f"{'https' if scope.get('scheme') == 'wss' else 'http'}://{host}"
    return origin.lower() in {own.lower(), *(trusted.lower() for trusted in settings.CSRF_TRUSTED_ORIGINS)}


class SameOriginValidator:
    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not same_origin(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
