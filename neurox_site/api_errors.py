"""The API's one error shape, made in one place (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``).

Every error answer of every endpoint is a JSON object::

    {"detail": "<one human sentence>", "code": "<machine_code>"}

plus, for field validation errors only, ``"fields": {"<field>": ["<message>", ...]}`` (errors about the request
as a whole under ``"non_field_errors"``; nested fields as dotted paths, e.g. ``"files.0"``).

Besides DRF's own exceptions, this handler understands what the services raise: Django's ``ValidationError``
(field errors when the service named a field; ``UploadRefused`` keeps its code), ``PermissionDenied`` and
``Http404`` (their messages are kept), and the request-size errors Django raises while parsing a body. Every
401 is also counted against the client address (:class:`accounts.throttling.FailedAuthenticationThrottle`);
past that rate the answer is 429 with ``Retry-After``.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import (
    NON_FIELD_ERRORS,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.quotas import human_bytes
from accounts.throttling import FailedAuthenticationThrottle


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class ServiceRefusal(exceptions.APIException):
    """A service said no for a reason that is not about one field (400)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"


def api_exception_handler(exc, context):
    """DRF's handler with the team's error body, the services' exceptions, and the failed-authentication limit."""
    exc = _as_api_exception(exc)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        exc = _count_failed_authentication(exc, context)
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = error_body(exc)
    return response


def error_body(exc: exceptions.APIException) -> dict:
    detail = exc.detail
    if isinstance(exc, exceptions.ValidationError) or isinstance(detail, (dict, list)):
        fields = _flatten(detail)
        return {"detail": _fields_sentence(fields), "code": "invalid", "fields": fields}
    return {"detail": str(detail), "code": getattr(detail, "code", None) or exc.default_code}


def _as_api_exception(exc):
    if isinstance(exc, Http404):
        return exceptions.NotFound(*exc.args)
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            non_field_key = api_settings.NON_FIELD_ERRORS_KEY
            return exceptions.ValidationError({
                (non_field_key if field == NON_FIELD_ERRORS else field): [m for e in errors for m in e.messages]
                for field, errors in exc.error_dict.items()
            })
        code = getattr(exc, "code", None) or "invalid"
        return ServiceRefusal(" ".join(exc.messages), code=code)
    if isinstance(exc, RequestDataTooBig):
        return RequestTooLarge(
            f"The request's form fields are over {human_bytes(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)}; send large "
            "content as file parts of a multipart request."
        )
    if isinstance(exc, SuspiciousOperation):
        # Django would answer these with a bare 400 page; it also logs them as security events, so do we.
        logging.getLogger(f"django.security.{exc.__class__.__name__}").warning(str(exc))
        if isinstance(exc, TooManyFieldsSent):
            return exceptions.ParseError(
                f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields.",
                code="too_many_fields",
            )
        if isinstance(exc, TooManyFilesSent):
            return exceptions.ParseError(
                f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files.", code="too_many_files"
            )
        return exceptions.ParseError("The request body could not be parsed.")
    return exc


def _count_failed_authentication(exc, context):
    throttle = FailedAuthenticationThrottle()
    if throttle.allow_request(context["request"], context.get("view")):
        return exc
    return exceptions.Throttled(
        throttle.wait(), detail="Too many requests from your address failed to authenticate."
    )


def _flatten(detail, path: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {dotted field path: [messages]}."""
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            key = str(key)
            for field, messages in _flatten(value, f"{path}.{key}" if path else key).items():
                fields.setdefault(field, []).extend(messages)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)):
                item_path = f"{path}.{index}" if path else str(index)
                for field, messages in _flatten(item, item_path).items():
                    fields.setdefault(field, []).extend(messages)
            else:
                fields.setdefault(path or api_settings.NON_FIELD_ERRORS_KEY, []).append(str(item))
    else:
        fields[path or api_settings.NON_FIELD_ERRORS_KEY] = [str(detail)]
    return fields


def _fields_sentence(fields: dict[str, list[str]]) -> str:
    messages = [(field, message) for field, field_messages in fields.items() for message in field_messages]
    if len(messages) == 1:
        field, message = messages[0]
        return message if field == api_settings.NON_FIELD_ERRORS_KEY else f"{field}: {message}"
    return f"Some fields are not valid: {', '.join(fields)}."
