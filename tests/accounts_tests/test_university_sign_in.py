"""University sign-in without a browser: off unless configured, the claim / e-mail domain → quota group rules,
and the account rules of services.sign_in_with_identity. The whole flow against a real OpenID provider is in
tests/e2e/test_university_sign_in.py."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import ExternalIdentity, QuotaGroup, QuotaGroupRule
from accounts.services import SignInRefused, matching_rule_group, sign_in_with_identity
from tests.accounts_tests.test_settings import load_settings
from tests.support.oidc_provider import free_port

ISSUER = "https://login.example.edu"


@pytest.fixture
def oidc_on(settings):
    settings.NEUROX_OIDC_ENABLED = True
    settings.NEUROX_OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings.OIDC_RP_CLIENT_ID = "neurox"
    settings.NEUROX_OIDC_NAME = "Example University"
    return settings


def claims(**extra):
    return {"sub": "s-1", "email": "ada@example.edu", "preferred_username": "ada", "given_name": "Ada",
            "family_name": "Lovelace", **extra}


def test_off_by_default_no_button_and_no_endpoints(client, db):
    assert b"Sign in with" not in client.get(reverse("login")).content
    assert client.get(reverse("oidc-start")).status_code == 404
    assert client.get(reverse("oidc-callback"), {"code": "c", "state": "s"}).status_code == 404


def test_configured_the_sign_in_page_has_the_button(client, db, oidc_on):
    html = client.get(reverse("login"), {"next": "/projects/"}).content.decode()
    assert "Sign in with Example University" in html
    assert f'href="{reverse("oidc-start")}?next=/projects/"' in html


def test_an_unreachable_provider_is_said_on_the_sign_in_page(client, db, oidc_on):
    response = client.get(reverse("oidc-start"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("login")
    assert "The sign-in service of Example University cannot be reached just now" in response.content.decode()


def test_settings_need_both_issuer_and_client(tmp_path):
    result = load_settings(tmp_path, ["NEUROX_OIDC_ENABLED"], NEUROX_OIDC_ISSUER=ISSUER)
    assert result.returncode != 0
    assert "needs both NEUROX_OIDC_ISSUER and NEUROX_OIDC_CLIENT_ID" in result.stderr
    result = load_settings(tmp_path, ["NEUROX_OIDC_ENABLED", "OIDC_RP_SCOPES"], NEUROX_OIDC_ISSUER=ISSUER,
                           NEUROX_OIDC_CLIENT_ID="neurox", NEUROX_OIDC_SCOPES="openid,email,groups")
    assert result.returncode == 0, result.stderr
    assert '"NEUROX_OIDC_ENABLED": true' in result.stdout and '"openid email groups"' in result.stdout


def test_rules_match_a_domain_and_its_subdomains_and_list_claims(db):
    group = QuotaGroup.objects.create(name="Uni")
    domain = QuotaGroupRule(group=group, kind="email_domain", value="Example.edu")
    assert domain.matches({"email": "ada@example.edu"})
    assert domain.matches({"email": "ada@CS.example.edu"})
    assert not domain.matches({"email": "ada@badexample.edu"})
    assert not domain.matches({"email": "ada@example.edu", "email_verified": False})
    claim = QuotaGroupRule(group=group, kind="claim", claim="eduperson_affiliation", value="staff")
    assert claim.matches({"eduperson_affiliation": ["member", "Staff"]})
    assert claim.matches({"eduperson_affiliation": "staff"})
    assert not claim.matches({"eduperson_affiliation": ["student"]})
    assert not claim.matches({})


def test_the_first_matching_rule_by_priority_wins(db):
    staff = QuotaGroup.objects.create(name="Staff")
    everyone = QuotaGroup.objects.create(name="Everyone")
    QuotaGroupRule.objects.create(group=everyone, kind="email_domain", value="example.edu", priority=50)
    QuotaGroupRule.objects.create(group=staff, kind="claim", claim="groups", value="staff", priority=10)
    assert matching_rule_group(claims(groups=["staff"])) == staff
    assert matching_rule_group(claims()) == everyone
    assert matching_rule_group(claims(email="ada@elsewhere.org")) is None


def test_a_group_set_by_hand_stays_and_a_rule_group_goes_when_the_rule_no_longer_matches(db):
    staff = QuotaGroup.objects.create(name="Staff")
    special = QuotaGroup.objects.create(name="Special")
    QuotaGroupRule.objects.create(group=staff, kind="claim", claim="groups", value="staff")
    ada = sign_in_with_identity(issuer=ISSUER, claims=claims(groups=["staff"]))
    assert ada.quota_group == staff
    ada = sign_in_with_identity(issuer=ISSUER, claims=claims(groups=[]))
    assert ada.quota_group is None  # the rule gave it, the rule took it back

    ada.quota_group = special
    ada.save()
    ada = sign_in_with_identity(issuer=ISSUER, claims=claims(groups=["staff"]))
    assert ada.quota_group == special  # an operator's choice outlasts the rules


def test_the_account_is_found_by_issuer_and_sub_not_by_name_or_address(db):
    ada = sign_in_with_identity(issuer=ISSUER, claims=claims())
    other = sign_in_with_identity(issuer="https://other.example.org",
                                  claims=claims(email="ada@other.example.org"))
    assert other.pk != ada.pk and other.username == "ada-2"
    again = sign_in_with_identity(issuer=ISSUER, claims=claims(email="lovelace@example.edu", given_name="A."))
    assert again.pk == ada.pk and again.email == "lovelace@example.edu" and again.first_name == "A."
    assert ExternalIdentity.objects.count() == 2


def test_refusals_store_nothing(db, settings, django_user_model):
    with pytest.raises(SignInRefused, match="did not release your e-mail address"):
        sign_in_with_identity(issuer=ISSUER, claims=claims(email=""))
    settings.NEUROX_OIDC_CREATE_ACCOUNTS = False
    with pytest.raises(SignInRefused, match="does not create accounts at the first sign-in"):
        sign_in_with_identity(issuer=ISSUER, claims=claims())
    assert not django_user_model.objects.exists() and not ExternalIdentity.objects.exists()


def test_an_account_switched_off_cannot_sign_in(db):
    ada = sign_in_with_identity(issuer=ISSUER, claims=claims())
    get_user_model().objects.filter(pk=ada.pk).update(is_active=False)
    with pytest.raises(SignInRefused, match="switched off"):
        sign_in_with_identity(issuer=ISSUER, claims=claims())


def test_a_new_address_that_belongs_to_another_account_is_not_taken(db, make_user):
    make_user(username="bob", email="bob@example.edu")
    ada = sign_in_with_identity(issuer=ISSUER, claims=claims())
    ada = sign_in_with_identity(issuer=ISSUER, claims=claims(email="BOB@example.edu"))
    assert ada.email == "ada@example.edu"


def test_signup_off_points_to_the_university_button(client, db, oidc_on):
    oidc_on.NEUROX_ALLOW_SIGNUP = False
    response = client.get(reverse("accounts:signup"))
    assert response.status_code == 404
    assert "Use “Sign in with Example University” on the sign-in page" in response.content.decode()
