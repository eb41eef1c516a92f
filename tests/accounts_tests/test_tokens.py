"""API tokens: created with a secret shown once, stored hashed, authenticate, revoke and expire."""

import hashlib
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import create_token

pytestmark = pytest.mark.django_db

TOKENS_URL = "/api/v1/tokens/"


def client_with(secret, keyword="Token"):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"{keyword} {secret}")
    return api


def test_token_secret_is_stored_only_as_sha256(user):
    token, secret = create_token(user, "laptop")
    token.refresh_from_db()
    assert secret.startswith("nx_") and len(secret) > 40
    assert token.digest == hashlib.sha256(secret.encode()).hexdigest()
    stored = [str(value) for value in ApiToken.objects.filter(pk=token.pk).values().get().values()]
    assert secret not in stored
    assert secret[3:11] == token.prefix


def test_token_authenticates_as_its_user_and_records_last_use(user):
    token, secret = create_token(user, "script")
    assert token.last_used_at is None
    response = client_with(secret).get(TOKENS_URL)
    assert response.status_code == 200
    assert [row["name"] for row in response.json()["results"]] == ["script"]
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert client_with(secret, keyword="Bearer").get(TOKENS_URL).status_code == 200


def test_revoked_token_gets_401(user):
    token, secret = create_token(user, "to revoke")
    api = client_with(secret)
    assert api.get(TOKENS_URL).status_code == 200
    assert api.delete(f"{TOKENS_URL}{token.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    response = api.get(TOKENS_URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_expired_token_gets_401(user):
    token, secret = create_token(user, "short", expires_at=timezone.now() + timedelta(minutes=5))
    assert client_with(secret).get(TOKENS_URL).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client_with(secret).get(TOKENS_URL).status_code == 401


@pytest.mark.parametrize("header", ["Token nx_not-a-real-secret", "Token", "Token a b", "Bearer nx_"])
def test_bad_token_headers_get_401(user, header):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=header)
    assert api.get(TOKENS_URL).status_code == 401


def test_token_of_inactive_user_gets_401(user):
    _, secret = create_token(user, "x")
    user.is_active = False
    user.save()
    assert client_with(secret).get(TOKENS_URL).status_code == 401


def test_api_create_returns_secret_once_then_never(auth_api_client, user):
    expires = (timezone.now() + timedelta(days=7)).isoformat()
    response = auth_api_client.post(TOKENS_URL, {"name": "ci", "expires_at": expires}, format="json")
    assert response.status_code == 201
    body = response.json()
    secret = body["secret"]
    assert body["prefix"] == secret[3:11] and body["status"] == "active"
    assert response["Cache-Control"] == "no-store"
    listed = auth_api_client.get(TOKENS_URL).json()["results"]
    detail = auth_api_client.get(f"{TOKENS_URL}{body['id']}/").json()
    assert "secret" not in listed[0] and "secret" not in detail
    assert secret not in str(listed) + str(detail)
    assert client_with(secret).get(TOKENS_URL).status_code == 200


def test_api_create_refuses_past_expiry_and_blank_name(auth_api_client):
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = auth_api_client.post(TOKENS_URL, {"name": "old", "expires_at": past}, format="json")
    assert response.status_code == 400
    assert "future" in str(response.json()["fields"]["expires_at"])
    assert auth_api_client.post(TOKENS_URL, {"name": ""}, format="json").status_code == 400
    assert not ApiToken.objects.exists()


def test_users_see_and_revoke_only_their_own_tokens(user, other_user):
    theirs, _ = create_token(other_user, "bob's")
    mine, secret = create_token(user, "mine")
    api = client_with(secret)
    assert [row["id"] for row in api.get(TOKENS_URL).json()["results"]] == [mine.pk]
    assert api.get(f"{TOKENS_URL}{theirs.pk}/").status_code == 404
    assert api.delete(f"{TOKENS_URL}{theirs.pk}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_api_request_gets_401(api_client, method):
    response = getattr(api_client, method)(TOKENS_URL)
    assert response.status_code == 401


def test_tokens_page_shows_secret_once_and_lists_tokens(auth_client, user):
    response = auth_client.post(reverse("accounts:tokens"), {"name": "notebook", "expires_in": "30"})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=user)
    secret_shown = response.context["new_secret"]
    assert token.digest == hashlib.sha256(secret_shown.encode()).hexdigest()
    assert secret_shown in response.content.decode()
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)

    page = auth_client.get(reverse("accounts:tokens")).content.decode()
    assert "notebook" in page and f"nx_{token.prefix}" in page
    assert secret_shown not in page


def test_tokens_page_htmx_create_returns_the_panel_partial_only(auth_client):
    response = auth_client.post(
        reverse("accounts:tokens"), {"name": "htmx", "expires_in": "never"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="token-panel">')
    assert "<html" not in html
    assert ApiToken.objects.get(name="htmx").expires_at is None


def test_tokens_page_invalid_form_shows_inline_error(auth_client):
    response = auth_client.post(reverse("accounts:tokens"), {"name": "", "expires_in": "30"})
    assert response.status_code == 400
    assert b'class="error"' in response.content
    assert not ApiToken.objects.exists()


def test_tokens_page_revoke(auth_client, user, other_user):
    token, secret = create_token(user, "old")
    response = auth_client.post(reverse("accounts:revoke-token", args=[token.pk]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.status == "revoked"
    assert client_with(secret).get(TOKENS_URL).status_code == 401
    theirs, _ = create_token(other_user, "theirs")
    assert auth_client.post(reverse("accounts:revoke-token", args=[theirs.pk])).status_code == 404
    assert auth_client.get(reverse("accounts:revoke-token", args=[token.pk])).status_code == 405


# ---------------------------------------------------------------------------------------------- token rules
# A token-authenticated request may not create a token that outlives the calling token, nor revoke other tokens;
# a signed-in session may do both (see accounts.services).


@pytest.fixture
def short_token(user):
    token, secret = create_token(user, "five minutes", expires_at=timezone.now() + timedelta(minutes=5))
    return token, client_with(secret)


@pytest.mark.parametrize("expires", [None, timedelta(days=30)])
def test_a_token_cannot_create_a_token_that_outlives_it(short_token, expires):
    token, api = short_token
    body = {"name": "forever"}
    if expires:
        body["expires_at"] = (timezone.now() + expires).isoformat()
    response = api.post(TOKENS_URL, body, format="json")
    assert response.status_code == 400
    message = response.json()["fields"]["expires_at"][0]
    assert "no later than itself" in message and token.expires_at.isoformat() in message
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["five minutes"]


def test_a_token_may_create_a_token_that_expires_no_later(short_token):
    token, api = short_token
    response = api.post(TOKENS_URL, {"name": "shorter", "expires_at": token.expires_at.isoformat()}, format="json")
    assert response.status_code == 201
    assert ApiToken.objects.get(name="shorter").expires_at == token.expires_at


def test_a_token_that_never_expires_may_create_any_token(user):
    _, secret = create_token(user, "forever")
    assert client_with(secret).post(TOKENS_URL, {"name": "also forever"}, format="json").status_code == 201
    assert ApiToken.objects.get(name="also forever").expires_at is None


def test_a_token_cannot_revoke_other_tokens_only_itself(short_token, user):
    token, api = short_token
    other, other_secret = create_token(user, "laptop")
    response = api.delete(f"{TOKENS_URL}{other.pk}/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "only revoke itself" in response.json()["detail"]
    other.refresh_from_db()
    assert other.revoked_at is None and client_with(other_secret).get(TOKENS_URL).status_code == 200
    assert api.delete(f"{TOKENS_URL}{token.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_a_signed_in_session_manages_tokens_without_those_limits(client, user):
    short, _ = create_token(user, "five minutes", expires_at=timezone.now() + timedelta(minutes=5))
    client.force_login(user)
    created = client.post(TOKENS_URL, {"name": "from the session"}, content_type="application/json")
    assert created.status_code == 201
    assert ApiToken.objects.get(name="from the session").expires_at is None
    assert client.delete(f"{TOKENS_URL}{short.pk}/").status_code == 204
    short.refresh_from_db()
    assert short.revoked_at is not None
