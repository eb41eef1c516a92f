"""University sign-in (OpenID Connect) in the real browser, against the real uvicorn server and a real OpenID
provider process on loopback (panva's oidc-provider, tests/oidc_provider/; no mock of either side).

The server runs with local sign-up switched off (NEUROX_ALLOW_SIGNUP=false), as a university would: the first
university sign-in must still create the account, local sign-up must be refused, and local password accounts
(the admin) must still sign in."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from playwright.sync_api import Page, expect

from accounts.models import ExternalIdentity, QuotaGroup, QuotaGroupRule
from tests.e2e.server import ServerProcess
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.support.browser import VIEWPORT, sign_in
from tests.support.oidc_provider import OpenIDProvider, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INSTITUTION = "Example University"
CLIENT = {"client_id": "neurox-test", "client_secret": "a-test-client-secret-that-is-long-enough"}
ADA_SUB = "u-7f3a91"  # a login at the provider is its sub: unlike the username, it never changes
ADA = {
    "email": "ada.lovelace@example.edu", "email_verified": True, "preferred_username": "ada",
    "given_name": "Ada", "family_name": "Lovelace", "eduperson_affiliation": ["member", "staff"],
}


@pytest.fixture(scope="module")
def provider_port():
    return free_port()


@pytest.fixture(scope="module")
def oidc_server(django_db_setup, tmp_path_factory, provider_port):
    """uvicorn on the test database with university sign-in pointed at the provider (which starts after it:
    the endpoints are discovered at the first sign-in) and local sign-up off."""
    connection = connections["default"]
    server = ServerProcess(str(connection.settings_dict["NAME"]), tmp_path_factory.mktemp("oidc-server"), env={
        "NEUROX_OIDC_ISSUER": f"http://127.0.0.1:{provider_port}",
        "NEUROX_OIDC_CLIENT_ID": CLIENT["client_id"],
        "NEUROX_OIDC_CLIENT_SECRET": CLIENT["client_secret"],
        "NEUROX_OIDC_NAME": INSTITUTION,
        "NEUROX_OIDC_SCOPES": "openid email profile groups",
        "NEUROX_ALLOW_SIGNUP": "false",
    })
    yield server
    server.stop()


@pytest.fixture(scope="module")
def provider(oidc_server, provider_port, tmp_path_factory):
    client = {**CLIENT, "redirect_uris": [f"{oidc_server.url}/oidc/callback/"]}
    started = OpenIDProvider(tmp_path_factory.mktemp("oidc-provider"), provider_port, client, {ADA_SUB: ADA})
    yield started
    started.stop()


@pytest.fixture
def new_page(chromium, oidc_server, provider, transactional_db, request):
    """``new_page()``: a fresh browser (no cookies at the site or the provider), relative to the server."""
    contexts = []
    provider.set_accounts({ADA_SUB: ADA})

    def make() -> Page:
        context = chromium.new_context(base_url=oidc_server.url, viewport=VIEWPORT)
        context.set_default_timeout(20_000)
        context.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())  # provider's fonts
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("---- test server log ----\n" + oidc_server.log() + "\n---- provider log ----\n" + provider.log())


def start_university_sign_in(page: Page, provider: OpenIDProvider, login: str) -> None:
    """From the sign-in page through the provider's own sign-in page; stops where the provider sends the
    browser back."""
    page.goto("/accounts/login/")
    page.get_by_role("link", name=f"Sign in with {INSTITUTION}").click()
    expect(page).to_have_url(re.compile(re.escape(provider.issuer) + "/interaction/"))
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "the provider checks no password in tests")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # the provider's consent page


def university_sign_in(page: Page, provider: OpenIDProvider, login: str, username: str) -> None:
    start_university_sign_in(page, provider, login)
    expect(page.get_by_role("button", name=f"Sign out {username}")).to_be_visible()


def is_callback(url: str) -> bool:
    return urlsplit(url).path == "/oidc/callback/"


def follow_to_callback(page: Page, url: str) -> str:
    """Follows redirects with the browser's cookies (not the browser) until the callback or a page."""
    for _ in range(10):
        if is_callback(url):
            return url
        location = page.context.request.get(url, max_redirects=0).headers.get("location")
        if not location:
            return url
        url = urljoin(url, location)
    raise AssertionError(f"more than 10 redirects, at {url}")


def hold_callbacks(page: Page, provider: OpenIDProvider) -> list[str]:
    """The provider's answers (its redirects to the callback) are kept, not delivered: the test decides what
    reaches the server. Playwright routes no redirect, so each form post to the provider is sent from here and
    its redirects followed here; the browser is sent on to where they end, unless that is the callback."""
    held: list[str] = []

    def hold(route):
        response = route.fetch(max_redirects=0)
        location = response.headers.get("location")
        if not location:
            route.fulfill(response=response)
            return
        final = follow_to_callback(page, urljoin(route.request.url, location))
        if is_callback(final):
            held.append(final)
            route.fulfill(status=200, content_type="text/html", body="<p>held by the test</p>")
        else:
            route.fulfill(status=303, headers={"location": final})

    page.route(re.compile("^" + re.escape(provider.issuer) + "/"), hold)
    return held


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def expect_refused(page: Page, text: str) -> None:
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.locator("li.message--error")).to_contain_text(text)
    expect(page.locator("li.message--error")).to_contain_text("Nothing was stored")
    expect(page.get_by_role("button", name=re.compile("^Sign out"))).to_have_count(0)


def groups():
    staff = QuotaGroup.objects.create(name="Staff", storage_quota_bytes=50 * 1024**3)
    students = QuotaGroup.objects.create(name="Students", storage_quota_bytes=5 * 1024**3)
    QuotaGroupRule.objects.create(group=staff, kind="claim", claim="eduperson_affiliation", value="staff",
                                  priority=10)
    QuotaGroupRule.objects.create(group=students, kind="email_domain", value="students.example.edu", priority=20)
    return staff, students


def test_first_sign_in_creates_the_account_from_the_claims_in_the_mapped_group(new_page, provider):
    staff, _ = groups()
    page = new_page()
    university_sign_in(page, provider, ADA_SUB, "ada")

    ada = get_user_model().objects.get()
    assert (ada.username, ada.email, ada.first_name, ada.last_name) == (
        "ada", "ada.lovelace@example.edu", "Ada", "Lovelace")
    assert ada.quota_group == staff
    assert ada.limit("storage_quota_bytes") == 50 * 1024**3
    assert not ada.has_usable_password() and not ada.is_staff and not ada.is_superuser
    identity = ExternalIdentity.objects.get()
    assert (identity.user, identity.issuer, identity.subject) == (ada, provider.issuer, ADA_SUB)


def test_second_sign_in_is_the_same_account_with_its_claims_brought_up_to_date(new_page, provider):
    _, students = groups()
    university_sign_in(new_page(), provider, ADA_SUB, "ada")
    first = get_user_model().objects.get()

    # Since then: a new name and address, another preferred_username, no longer staff.
    provider.set_accounts({ADA_SUB: {**ADA, "family_name": "King", "email": "ada.king@students.example.edu",
                                     "preferred_username": "aking", "eduperson_affiliation": ["student"]}})
    university_sign_in(new_page(), provider, ADA_SUB, "ada")

    ada = get_user_model().objects.get()  # still exactly one account
    assert ada.pk == first.pk and ada.username == "ada"
    assert (ada.last_name, ada.email) == ("King", "ada.king@students.example.edu")
    assert ada.quota_group == students  # the rules are applied at every sign-in
    assert ExternalIdentity.objects.count() == 1


def test_an_existing_address_is_not_taken_over_by_a_university_sign_in(new_page, provider):
    local = UserFactory(username="ada-local", email=ADA["email"])
    page = new_page()
    start_university_sign_in(page, provider, ADA_SUB)
    expect_refused(page, f"An account with the e-mail address {ADA['email']} already exists here")

    assert list(get_user_model().objects.all()) == [local]
    assert not ExternalIdentity.objects.exists()
    sign_in(page, "ada-local")  # its owner still signs in with the password


def test_local_sign_up_is_refused_when_switched_off(new_page, provider):
    page = new_page()
    page.goto("/accounts/login/")
    expect(page.get_by_role("link", name=f"Sign in with {INSTITUTION}")).to_be_visible()
    expect(page.get_by_role("link", name="Sign up")).to_have_count(0)

    response = page.goto("/accounts/signup/")
    assert response.status == 404
    expect(page.get_by_text("Self sign-up is turned off on this site")).to_be_visible()
    expect(page.get_by_text(f"Use “Sign in with {INSTITUTION}” on the sign-in page")).to_be_visible()

    # A hand-made sign-up POST (with a valid CSRF token) stores nothing either.
    page.goto("/accounts/login/")
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    answer = page.request.post("/accounts/signup/", form={
        "csrfmiddlewaretoken": csrf, "username": "mallory", "email": "mallory@example.org",
        "password1": "a-long-unusual-passphrase", "password2": "a-long-unusual-passphrase"})
    assert answer.status == 404 and "Self sign-up is turned off" in answer.text()
    assert not get_user_model().objects.exists()


def test_local_accounts_and_the_admin_still_sign_in_with_a_password(new_page, provider):
    get_user_model().objects.create_superuser("root", "root@example.org", DEFAULT_PASSWORD)
    UserFactory(username="olivia")
    page = new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()

    page = new_page()
    sign_in(page, "olivia")
    assert not ExternalIdentity.objects.exists()


def test_a_refusal_at_the_provider_is_said_and_stores_nothing(new_page, provider):
    page = new_page()
    page.goto("/accounts/login/")
    page.get_by_role("link", name=f"Sign in with {INSTITUTION}").click()
    page.get_by_role("link", name="[ Cancel ]").click()
    expect_refused(page, f"{INSTITUTION} refused the sign-in (access_denied: End-User aborted interaction)")
    assert not get_user_model().objects.exists()


def test_an_answer_with_a_forged_state_is_refused_and_stores_nothing(new_page, provider):
    page = new_page()
    held = hold_callbacks(page, provider)
    start_university_sign_in(page, provider, ADA_SUB)
    expect(page.get_by_text("held by the test")).to_be_visible()
    page.unroute_all()

    answer = query_of(held[0])
    assert answer["code"] and answer["state"]
    page.goto(f"/oidc/callback/?{urlencode({**answer, 'state': 'forged-by-an-attacker'})}")
    expect_refused(page, "does not belong to a sign-in started in this browser")
    assert not get_user_model().objects.exists()


def test_a_code_from_another_sign_in_is_refused_and_stores_nothing(new_page, provider, oidc_server):
    """A provider's answer swapped into another sign-in of the same browser (a login-CSRF or mix-up): the
    code is bound to its own sign-in's PKCE verifier and nonce, so the provider refuses to redeem it."""
    page = new_page()
    held = hold_callbacks(page, provider)
    start_university_sign_in(page, provider, ADA_SUB)
    expect(page.get_by_text("held by the test")).to_be_visible()
    page.unroute_all()
    # A second sign-in: the provider remembers Ada and answers at once.
    held.append(follow_to_callback(page, f"{oidc_server.url}/oidc/authenticate/"))
    first, second = (query_of(url) for url in held)
    assert first["state"] != second["state"] and first["code"] != second["code"]

    page.goto(f"/oidc/callback/?{urlencode({**second, 'code': first['code']})}")
    expect_refused(page, f"{INSTITUTION} refused to complete the sign-in (invalid_grant")
    assert not get_user_model().objects.exists()
