"""Every API error is JSON in one shape: {"detail", "code"} plus "fields" for field errors; /api/v1/ is an index."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import create_token
from projects.models import CorpusUpload, Project

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_client(user):
    _, secret = create_token(user, "tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


def assert_error_shape(body, code):
    assert set(body) <= {"detail", "code", "fields"}, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert body["code"] == code, body


def test_a_field_error_names_the_field_in_detail_and_fields(token_client):
    response = token_client.post("/api/v1/tokens/", {"name": "x", "expires_at": "not a date"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert_error_shape(body, "invalid")
    assert list(body["fields"]) == ["expires_at"]
    assert body["detail"] == f"expires_at: {body['fields']['expires_at'][0]}"
    assert ApiToken.objects.count() == 1  # only the client's own


def test_several_field_errors_are_all_listed(token_client):
    response = token_client.post("/api/v1/uploads/corpora/", {"format": "nonsense"}, format="multipart")
    body = response.json()
    assert response.status_code == 400
    assert_error_shape(body, "invalid")
    assert {"file", "format"} <= set(body["fields"])
    assert body["detail"].startswith("Some fields are not valid:") and "file" in body["detail"]
    assert not CorpusUpload.objects.exists()


def test_a_service_field_error_and_a_service_refusal(token_client, user):
    blank = token_client.post("/api/v1/projects/", {"name": "   "}, format="json")
    assert blank.status_code == 400
    assert blank.json() == {"detail": "name: A project needs a name.", "code": "invalid",
                            "fields": {"name": ["A project needs a name."]}}
    assert not Project.objects.exists()

    refused = token_client.post("/api/v1/uploads/corpora/", {
        "format": "plain", "file": SimpleUploadedFile("a.word", b"one two\n"),
        "label_file": SimpleUploadedFile("a.label", b"X\n"),
    }, format="multipart")
    assert refused.status_code == 400
    assert_error_shape(refused.json(), "corpus")
    assert "fields" not in refused.json()
    assert not CorpusUpload.objects.exists()


@pytest.mark.parametrize(("headers", "code"), [
    ({}, "not_authenticated"),
    ({"HTTP_AUTHORIZATION": "Token nx_wrong"}, "authentication_failed"),
])
def test_401_has_the_shape(headers, code):
    response = APIClient().get("/api/v1/projects/", **headers)
    assert response.status_code == 401
    assert_error_shape(response.json(), code)


def test_404_for_a_page_past_the_end(token_client):
    response = token_client.get("/api/v1/projects/?page=2")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page.", "code": "not_found"}


@pytest.mark.parametrize("query", ["page=0", "page=", "page=x", "page=1&page=2", "page=%EF%BC%91"])
def test_a_page_that_is_not_one_whole_number_from_1_is_a_field_error(token_client, query):
    response = token_client.get(f"/api/v1/projects/?{query}")
    assert response.status_code == 400
    assert response.json()["fields"] == {"page": ["Give one page number: a whole number, 1 or more."]}


def test_unparseable_bodies_are_json_errors(token_client):
    no_boundary = token_client.generic("POST", "/api/v1/uploads/corpora/", b"garbage",
                                       content_type="multipart/form-data")
    assert no_boundary.status_code == 400
    assert_error_shape(no_boundary.json(), "parse_error")
    bad_json = token_client.generic("POST", "/api/v1/projects/", b"{bad", content_type="application/json")
    assert bad_json.status_code == 400
    assert_error_shape(bad_json.json(), "parse_error")
    assert not Project.objects.exists()


def test_too_many_form_fields_is_a_json_400_not_a_bare_one(token_client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"field{n}": "x" for n in range(10)}
    response = token_client.post("/api/v1/uploads/corpora/", fields, format="multipart")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The request has more than 5 form fields.", "code": "too_many_fields"}


def test_oversized_form_fields_are_a_json_413(token_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = token_client.post("/api/v1/uploads/corpora/", {"description": "x" * 5000, "format": "plain"},
                                 format="multipart")
    assert response.status_code == 413
    assert_error_shape(response.json(), "too_large")
    assert "over 1.0 KB" in response.json()["detail"]
    assert not CorpusUpload.objects.exists()


@pytest.mark.parametrize("authenticated", [False, True])
def test_api_root_is_a_json_index_of_the_endpoints(user, authenticated):
    client = APIClient()
    if authenticated:
        client.force_authenticate(user)
    response = client.get("/api/v1/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    body = response.json()
    assert {"tokens", "projects", "uploads/models", "uploads/corpora", "uploads/test-sets"} <= set(body["endpoints"])
    assert body["endpoints"]["projects"] == "http://testserver/api/v1/projects/"
    assert body["schema"] == "http://testserver/api/schema/" and body["docs"] == "http://testserver/api/docs/"
    for url in body["endpoints"].values():  # every listed endpoint exists
        assert APIClient().get(url).status_code == 401


@pytest.mark.parametrize("query", ["own=", "own=yes", "own=1", "own=true&own=false", "has_references=null"])
def test_a_boolean_filter_takes_true_or_false_once_and_refuses_the_rest(token_client, query):
    endpoint = "/api/v1/uploads/test-sets/" if query.startswith("has_references") else "/api/v1/uploads/models/"
    response = token_client.get(f"{endpoint}?{query}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert_error_shape(body, "invalid")
    assert body["fields"][query.split("=")[0]] == ["Use true or false, once."]


def test_a_boolean_filter_still_filters(token_client):
    for query in ("own=true", "own=FALSE", "has_references=false"):
        endpoint = "/api/v1/uploads/test-sets/" if query.startswith("has") else "/api/v1/uploads/models/"
        assert token_client.get(f"{endpoint}?{query}").status_code == 200
