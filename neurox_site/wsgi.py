"""WSGI entry point (HTTP only, no websockets): serve asgi.py with uvicorn instead (see the README)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neurox_site.settings")

application = get_wsgi_application()
