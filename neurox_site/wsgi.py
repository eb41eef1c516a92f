"""WSGI entry point (HTTP only; use asgi.py with daphne for websockets)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neurox_site.settings")

application = get_wsgi_application()
