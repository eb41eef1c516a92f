"""ASGI entry point, served by uvicorn: HTTP through the request guard to Django, websockets through Channels.

uvicorn streams request bodies to the application as they arrive (daphne reads and parses a whole multipart body
in memory first); :mod:`neurox_site.request_guard` refuses oversized or anonymous large bodies before reading them.
A websocket's handshake must come from this site's own origin, port included (:mod:`neurox_site.websocket_origin`).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neurox_site.settings")

# Django must be set up before anything imports models (the websocket routes and the guard do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from neurox_site.request_guard import RequestGuard  # noqa: E402
from neurox_site.routing import websocket_urlpatterns  # noqa: E402
from neurox_site.websocket_origin import SameOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": RequestGuard(django_asgi_app),
        "websocket": SameOriginValidator(
            AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))),
    }
)
