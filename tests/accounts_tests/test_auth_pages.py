"""Sign in / out, sign-up on and off, password change and reset, login required for HTML."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_sign_in_with_username_and_password_then_sign_out(client, user, password):
    response = client.post(reverse("login"), {"username": user.username, "password": password})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session


def test_wrong_password_is_refused_with_a_message(client, user):
    response = client.post(reverse("login"), {"username": user.username, "password": "nope"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert b"correct username and password" in response.content


def test_login_page_renders_labelled_fields(client):
    response = client.get(reverse("login"))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<label for="id_username">' in html and '<label for="id_password">' in html


@pytest.mark.parametrize("url_name", ["home", "accounts:tokens", "password_change"])
def test_anonymous_html_request_is_redirected_to_login(client, url_name):
    url = reverse(url_name)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_signed_in_home_renders_base_layout_with_csrf_header_and_htmx(auth_client):
    response = auth_client.get(reverse("home"), follow=True)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert "django_htmx/htmx-2.min.js" in html
    assert 'id="sidebar-projects"' in html


def test_signup_creates_an_account_and_signs_in(client, settings):
    settings.NEUROX_ALLOW_SIGNUP = True
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "carol",
            "email": "carol@example.org",
            "password1": "a-long-unusual-passphrase",
            "password2": "a-long-unusual-passphrase",
        },
    )
    assert response.status_code == 302
    carol = get_user_model().objects.get(username="carol")
    assert carol.email == "carol@example.org"
    assert not carol.is_staff
    assert client.session["_auth_user_id"] == str(carol.pk)


def test_signup_refuses_an_email_already_in_use(client, settings, user):
    settings.NEUROX_ALLOW_SIGNUP = True
    response = client.post(
        reverse("accounts:signup"),
        {"username": "carol", "email": user.email.upper(), "password1": "x-long-passphrase-9", "password2": "x-long-passphrase-9"},
    )
    assert response.status_code == 200
    assert b"already exists" in response.content
    assert not get_user_model().objects.filter(username="carol").exists()


def test_signup_turned_off_is_404_and_not_linked(client, settings):
    settings.NEUROX_ALLOW_SIGNUP = False
    assert client.get(reverse("accounts:signup")).status_code == 404
    response = client.post(
        reverse("accounts:signup"),
        {"username": "mallory", "email": "m@example.org", "password1": "a-long-passphrase-1", "password2": "a-long-passphrase-1"},
    )
    assert response.status_code == 404
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert reverse("accounts:signup").encode() not in client.get(reverse("login")).content


def test_password_change(auth_client, user, password):
    response = auth_client.post(
        reverse("password_change"),
        {"old_password": password, "new_password1": "another-long-passphrase", "new_password2": "another-long-passphrase"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("another-long-passphrase")


def test_password_reset_sends_a_working_link(client, user):
    response = client.post(reverse("password_reset"), {"email": user.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    response = client.get(link, follow=True)
    assert response.status_code == 200
    set_password_url = response.redirect_chain[-1][0]
    response = client.post(set_password_url, {"new_password1": "brand-new-passphrase", "new_password2": "brand-new-passphrase"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("brand-new-passphrase")


def test_health_endpoint_needs_no_login(client):
    response = client.get("/health/?format=json")
    assert response.status_code == 200, response.content


def test_worker_health_fails_naming_the_problem_while_no_worker_listens(client):
    """No worker runs in this process's broker here (scripts/serve's test sees the same page answer 200)."""
    response = client.get("/health/workers/?format=json")
    assert response.status_code == 500
    assert "Celery workers unavailable" in response.content.decode()
