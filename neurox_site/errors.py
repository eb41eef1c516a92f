"""Error responses for people and for API clients: styled 400/403/404/500 pages, and JSON under ``/api/``.

Django shows its technical pages (every route, tracebacks, settings) whenever ``DEBUG`` is on, and the
embedded setup runs with ``DEBUG`` on. Nobody trying the platform should see those, so:

* ``handler400/403/404/500`` in ``urls.py`` point at the views below (used when ``DEBUG`` is off);
* :class:`ErrorPagesMiddleware` gives the same responses when ``DEBUG`` is on, unless a developer asks for the
  technical pages with ``NEUROX_DEBUG_PAGES=true``; in every mode it answers ``PermissionDenied`` itself, so a
  routine 403 is one log line, not a traceback.

API errors use the team's shape: ``{"detail": "<one sentence>", "code": "<machine_code>"}``.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core import signals
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpResponse, JsonResponse
from django.template import loader
from django.urls import Resolver404, resolve
from django.utils.log import log_response

API_PREFIX = "/api/"

# status → (code, page title, what to say when the exception carries no message of its own)
ERRORS = {
    400: ("bad_request", "Bad request", "The request could not be understood."),
    403: ("permission_denied", "Not allowed", "You do not have permission to do this."),
    404: ("not_found", "Page not found", "There is nothing at this address."),
    500: ("server_error", "Something went wrong", "The server hit an error; it has been logged."),
}
CSRF_FAILURE = (
    "The form's security token was missing or out of date (the page was probably open for a long time, or "
    "you signed in elsewhere). Reload the page and try again."
)


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def _message_of(exception) -> str | None:
    """The human sentence an exception was raised with (``PermissionDenied("Viewers cannot…")``), or None.
    A URL that matched no route carries the tried patterns instead: never shown."""
    if exception is None or isinstance(exception, Resolver404):
        return None
    message = exception.args[0] if exception.args else None
    return message if isinstance(message, str) and message.strip() else None


def error_response(request, status: int, exception=None, *, detail: str | None = None) -> HttpResponse:
    code, title, default_detail = ERRORS[status]
    detail = detail or _message_of(exception) or default_detail
    if status == 500 or isinstance(exception, SuspiciousOperation):
        detail = default_detail  # that exception's text is for the log, not for the visitor
    if _is_api(request):
        return JsonResponse({"detail": detail, "code": code}, status=status)
    context = {"status": status, "title": title, "detail": detail}
    template = loader.get_template(f"errors/{status}.html")
    # The 500 page renders without the request: no database queries (the database may be what failed).
    body = template.render(context) if status == 500 else template.render(context, request)
    return HttpResponse(body, status=status)


def bad_request(request, exception=None):
    return error_response(request, 400, exception)


def permission_denied(request, exception=None):
    return error_response(request, 403, exception)


def page_not_found(request, exception=None):
    return error_response(request, 404, exception)


def server_error(request):
    return error_response(request, 500)


def csrf_failure(request, reason=""):
    return error_response(request, 403, detail=CSRF_FAILURE)


def _technical_pages_wanted() -> bool:
    return settings.DEBUG and settings.NEUROX_DEBUG_PAGES


class ErrorPagesMiddleware:
    """Friendly error responses where Django would show a debug page (see the module docstring). Goes after
    ``CommonMiddleware`` in ``MIDDLEWARE``, so that it can still turn a 404 into an added-slash redirect."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.DEBUG and not _technical_pages_wanted():
            # Django answers a URL that matches no route with its technical 404 before any view runs.
            try:
                resolve(request.path_info, getattr(request, "urlconf", None))
            except Resolver404 as exception:
                return page_not_found(request, exception)
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, PermissionDenied):
            return permission_denied(request, exception)  # logged once as "Forbidden: <path>", no traceback
        if not settings.DEBUG or _technical_pages_wanted():
            return None  # Django's own handling (handler404 / handler500 with DEBUG off)
        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        if isinstance(exception, BadRequest):
            response = bad_request(request, exception)
            log_response("%s: %s", str(exception), request.path, response=response, request=request,
                         exception=exception)
            return response
        if isinstance(exception, SuspiciousOperation):
            response = bad_request(request, exception)
            log_response(str(exception), response=response, request=request, exception=exception, level="error",
                         logger=logging.getLogger(f"django.security.{exception.__class__.__name__}"))
            return response
        signals.got_request_exception.send(sender=None, request=request)
        response = server_error(request)
        log_response("%s: %s", "Internal Server Error", request.path, response=response, request=request,
                     exception=exception)
        return response
