"""Failed authentication is throttled per client address, although DRF checks throttles only after auth."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.services import create_token

pytestmark = pytest.mark.django_db

LIMIT = 5
ADDRESSES = ("10.0.0.1", "10.0.0.2")


@pytest.fixture
def failed_auth_limit(settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "failed_auth": f"{LIMIT}/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    counters = [f"throttle_failed_auth_{address}" for address in ADDRESSES]  # not cache.clear(): Redis is shared
    cache.delete_many(counters)
    yield LIMIT
    cache.delete_many(counters)


def get(path="/api/v1/projects/", address="10.0.0.1", **headers):
    return APIClient().get(path, REMOTE_ADDR=address, **headers)


def test_bad_tokens_get_429_with_retry_after_past_the_limit(failed_auth_limit):
    statuses = [get(HTTP_AUTHORIZATION=f"Token nx_guess{n}").status_code for n in range(failed_auth_limit + 2)]
    assert statuses == [401] * failed_auth_limit + [429, 429]
    refused = get(HTTP_AUTHORIZATION="Token nx_another")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused.json()["code"] == "throttled"
    assert "failed to authenticate" in refused.json()["detail"]


def test_anonymous_requests_to_protected_endpoints_are_counted_too(failed_auth_limit):
    statuses = [get().status_code for _ in range(failed_auth_limit + 1)]
    assert statuses == [401] * failed_auth_limit + [429]


def test_other_addresses_and_valid_credentials_are_not_affected(failed_auth_limit, user):
    for _ in range(failed_auth_limit + 1):
        get(HTTP_AUTHORIZATION="Token nx_guess")
    assert get(HTTP_AUTHORIZATION="Token nx_guess").status_code == 429
    assert get(HTTP_AUTHORIZATION="Token nx_guess", address="10.0.0.2").status_code == 401
    _, secret = create_token(user, "valid")
    assert get(HTTP_AUTHORIZATION=f"Token {secret}").status_code == 200  # same address, good token


def test_a_forged_forwarded_for_header_does_not_give_a_new_address(failed_auth_limit):
    statuses = [get(HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").status_code for n in range(failed_auth_limit + 1)]
    assert statuses[-1] == 429
