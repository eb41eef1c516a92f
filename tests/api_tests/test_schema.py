"""The OpenAPI schema documents the one error shape, and the error statuses, on every operation."""

import pytest
from django.test import Client

ERROR_STATUSES = {"400", "401", "403", "404", "413", "429"}
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def schema():
    return Client().get("/api/schema/?format=json").json()


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if method in HTTP_METHODS:
                yield f"{method.upper()} {path}", operation


def test_the_error_component_is_the_team_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["detail", "code"]
    assert set(error["properties"]) == {"detail", "code", "fields"}


def test_every_operation_documents_every_error_status_with_a_json_body(schema):
    missing = {}
    for name, operation in operations(schema):
        responses = operation["responses"]
        expected = ERROR_STATUSES | ({"415"} if "requestBody" in operation else set())
        lacking = {status for status in expected
                   if "application/json" not in responses.get(status, {}).get("content", {})}
        if lacking:
            missing[name] = sorted(lacking)
    assert not missing
    assert len(list(operations(schema))) >= 20


def test_undocumented_errors_use_the_error_component_and_429_names_retry_after(schema):
    tokens = schema["paths"]["/api/v1/tokens/"]["get"]["responses"]
    assert tokens["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "Retry-After" in tokens["429"]["headers"]


def test_the_api_root_and_the_page_parameter_are_documented(schema):
    assert "200" in schema["paths"]["/api/v1/"]["get"]["responses"]
    page = next(p for p in schema["paths"]["/api/v1/projects/"]["get"]["parameters"] if p["name"] == "page")
    assert page["schema"]["minimum"] == 1
