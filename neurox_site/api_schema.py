"""OpenAPI schema additions made once for the whole API (a drf-spectacular postprocessing hook).

Every operation gets the error statuses any request can meet (even an open endpoint answers 401 to a bad
token), each with the one error body of :mod:`neurox_site.api_errors`, documented as the ``Error`` component.
A status an endpoint already documents keeps its own description (and its body schema, where it has one).
"""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every API error has this shape.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, as one sentence for a person."},
        "code": {"type": "string", "description": "The same as a machine-readable code, e.g. `invalid`, "
                 "`not_authenticated`, `permission_denied`, `not_found`, `throttled`, `quota`."},
        "fields": {
            "type": "object",
            "description": "Field validation errors only: messages per field (errors about the request as a "
            "whole under `non_field_errors`; nested fields as dotted paths).",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["detail", "code"],
}

ERROR_RESPONSES = {
    "400": "Invalid request: field errors under `fields`, or a refusal whose `code` says which kind. "
           "Nothing was changed.",
    "401": "No credentials, or invalid, expired or revoked ones.",
    "403": "Authenticated, but not allowed to do this (`detail` says why).",
    "404": "No such object or page, or it is not visible to you.",
    "413": "The request body is larger than the server accepts.",
    "429": "Too many requests: the per-user rate, or too many failed authentications from your address. "
           "Retry after the number of seconds in the `Retry-After` header.",
}

# Only where a request has a body.
UNSUPPORTED_MEDIA_TYPE = "The request body's Content-Type is not one this operation reads, or it is malformed."

RETRY_AFTER = {"schema": {"type": "integer"}, "description": "Seconds to wait before trying again."}

HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def document_errors(result, generator=None, request=None, public=None):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            statuses = dict(ERROR_RESPONSES)
            if "requestBody" in operation:
                statuses["415"] = UNSUPPORTED_MEDIA_TYPE
            for status, description in statuses.items():
                response = responses.setdefault(status, {"description": description})
                response.setdefault("content", error_content)
                if status == "429":
                    response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER
    return result
