"""An ASGI layer in front of Django that refuses request bodies it should never receive, before reading them.

Django reads a request's whole body before it routes, even to answer 401 or 404, so an anonymous client could
make the server receive (and spool to disk) gigabytes that no view will accept. This layer decides from the
headers alone, and then counts what arrives:

* a declared ``Content-Length`` over the upload limit (``NEUROX_MAX_UPLOAD_BYTES`` plus room for the form's
  other fields) is answered 413;
* a small body (up to ``ANONYMOUS_BODY_BYTES``: every public form, such as sign-in, sign-up and password reset)
  goes to Django, which decides everything else as usual;
* a larger body, or one without a ``Content-Length`` (chunked), needs a signed-in user, found the way Django
  finds one (the session cookie, or an ``Authorization: Token`` through accounts' token check). Anyone else gets
  401 (JSON under ``/api/``, a redirect to the sign-in page elsewhere). A chunked body is counted while it
  streams and cut off over the limit that applies: 413 past the upload limit for a signed-in user, 401 past
  ``ANONYMOUS_BODY_BYTES`` for anyone else.

Refusals carry ``Connection: close``: the client may still be sending, and the connection cannot be reused.
"""

from __future__ import annotations

import io
import json
from importlib import import_module

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.views import redirect_to_login
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.utils.html import escape
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import ApiTokenAuthentication

ANONYMOUS_BODY_BYTES = 1024 * 1024
# The form fields next to the files (Django caps them at DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB) and each part's
# headers and boundary.
FORM_OVERHEAD_BYTES = 4 * 1024 * 1024


def body_limit() -> int:
    """The most bytes a signed-in user's request body may have."""
    return settings.NEUROX_MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES


class RequestGuard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):  # HTTP scopes only (see asgi.py)
        headers = dict(scope["headers"])
        chunked = b"transfer-encoding" in headers  # then any Content-Length is ignored (RFC 9112, 6.3)
        declared = None if chunked else _content_length(headers)
        if not chunked and (declared or 0) <= ANONYMOUS_BODY_BYTES:
            return await self.app(scope, receive, send)

        limit = body_limit()
        if declared is not None and declared > limit:
            return await _refuse_too_large(scope, send, limit)
        if await signed_in(scope):
            refuse = _refuse_too_large
        elif declared is not None:
            return await _refuse_anonymous(scope, send)
        else:
            limit, refuse = ANONYMOUS_BODY_BYTES, _refuse_anonymous
        await self.app(scope, *_counted(scope, receive, send, limit, refuse))


def _content_length(headers: dict[bytes, bytes]) -> int | None:
    try:
        return int(headers[b"content-length"])
    except (KeyError, ValueError):
        return None


def _counted(scope, receive, send, limit: int, refuse):
    """``receive`` and ``send`` for the app that cut the body off once more than ``limit`` bytes arrived: the
    refusal is sent and the app is told the client disconnected (Django then stops without answering)."""
    received = 0
    refused = False

    async def counting_receive():
        nonlocal received, refused
        if refused:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                refused = True
                await refuse(scope, send, limit)
                return {"type": "http.disconnect"}
        return message

    async def guarded_send(message):
        if not refused:
            await send(message)

    return counting_receive, guarded_send


async def signed_in(scope) -> bool:
    """Whether the request comes from an active user, by a valid API token or a valid session, as Django and DRF
    would find them (the same token check, the same session and user checks)."""
    return await sync_to_async(_signed_in)(ASGIRequest(scope, io.BytesIO()))


def _signed_in(request) -> bool:
    close_old_connections()  # as Django does when a request starts: drops stale or broken connections
    try:
        if ApiTokenAuthentication().authenticate(request) is not None:
            return True
    except AuthenticationFailed:
        pass  # a bad token: the session may still identify the user (for HTML views it is all that counts)
    session_engine = import_module(settings.SESSION_ENGINE)
    request.session = session_engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    return auth.get_user(request).is_authenticated


def _is_api(scope) -> bool:
    return scope["path"].startswith("/api/")


async def _refuse_too_large(scope, send, limit: int):
    detail = f"This request body is over the limit of {limit:,} bytes."
    if _is_api(scope):
        await _send_json(send, 413, {"detail": detail, "code": "too_large"})
    else:
        await _send(send, 413, [(b"content-type", b"text/html; charset=utf-8")],
                    f"<!doctype html><title>Too large</title><p>{escape(detail)}</p>".encode())


async def _refuse_anonymous(scope, send, limit: int = ANONYMOUS_BODY_BYTES):
    if _is_api(scope):
        detail = (f"Authentication credentials were not provided: sign in or send an API token to send more than "
                  f"{limit:,} bytes.")
        await _send_json(send, 401, {"detail": detail, "code": "not_authenticated"},
                         [(b"www-authenticate", b"Token")])
    else:
        redirect = redirect_to_login(scope["path"])
        await _send(send, redirect.status_code, [(b"location", redirect["Location"].encode())], b"")


async def _send_json(send, status: int, content: dict, headers=()):
    await _send(send, status, [(b"content-type", b"application/json"), *headers], json.dumps(content).encode())


async def _send(send, status: int, headers, body: bytes):
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
