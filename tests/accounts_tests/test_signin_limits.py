"""Sign-in attempts are limited per account and per client address (django-axes), on the site and the admin."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import authenticate
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

LIMIT = 4


@pytest.fixture
def signin_limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    return LIMIT


def sign_in(username, password, address="10.0.0.1", url=None):
    client = Client(REMOTE_ADDR=address)
    response = client.post(url or reverse("login"), {"username": username, "password": password})
    return response, client


def fail(username, times, address="10.0.0.1"):
    for _ in range(times):
        response, _ = sign_in(username, "wrong password", address)
        assert response.status_code in (200, 429)


def test_past_the_limit_even_the_right_password_is_refused_and_the_page_says_when(signin_limit, user, password):
    fail(user.username, signin_limit - 1)
    response, _ = sign_in(user.username, "wrong password")
    assert response.status_code == 429  # the failure that reaches the limit
    response, client = sign_in(user.username, password)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    html = response.content.decode()
    assert "Too many failed sign-in attempts" in html and "try again in 15 minutes, after" in html
    assert 'name="username"' in html and f'value="{user.username}"' in html  # the form is still there
    assert int(response["Retry-After"]) == 15 * 60


def test_an_account_is_locked_from_every_address(signin_limit, user, password):
    fail(user.username, signin_limit)
    response, client = sign_in(user.username, password, address="10.9.9.9")
    assert response.status_code == 429 and "_auth_user_id" not in client.session


def test_an_address_is_locked_for_every_account(signin_limit, user, other_user, password):
    fail("someone-else", signin_limit)
    response, client = sign_in(other_user.username, password)
    assert response.status_code == 429 and "_auth_user_id" not in client.session


def test_another_account_from_another_address_is_not_affected(signin_limit, user, other_user, password):
    fail(user.username, signin_limit)
    response, client = sign_in(other_user.username, password, address="10.0.0.2")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(other_user.pk)


def test_failures_below_the_limit_still_let_the_right_password_in(signin_limit, user, password):
    fail(user.username, signin_limit - 1)
    response, client = sign_in(user.username, password)
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)


def test_the_admin_sign_in_is_limited_too(signin_limit, make_user, password):
    admin = make_user(username="root", is_staff=True, is_superuser=True)
    fail(admin.username, signin_limit)
    response, client = sign_in(admin.username, password, url=reverse("admin:login"))
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_authenticate_without_a_request_is_not_refused(user, password):
    # A shell or management command is not a client: the limit does not apply, the password check does.
    assert authenticate(username=user.username, password=password) == user
    assert authenticate(username=user.username, password="wrong") is None


def test_after_the_wait_the_right_password_works_again(signin_limit, user, password):
    fail(user.username, signin_limit)
    assert sign_in(user.username, password)[0].status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=14))
    assert sign_in(user.username, password)[0].status_code == 429  # still locked, and the wait starts again:
    assert all(timezone.now() - a.attempt_time < timedelta(minutes=1) for a in AccessAttempt.objects.all())
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    response, client = sign_in(user.username, password)
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)
