"""Fixtures shared by every test folder: users and API clients here, the rest in ``tests/fixtures/`` (one
module per concern, registered below). Plain helpers are in ``tests/support/``."""

import pytest
from rest_framework.test import APIClient

from tests.factories import DEFAULT_PASSWORD, UserFactory

pytest_plugins = [
    "tests.fixtures.people",
    "tests.fixtures.tiny_models",
    "tests.fixtures.uploads",
    "tests.fixtures.runs",
    "tests.fixtures.workers",
    "tests.fixtures.object_store",
]


@pytest.fixture
def make_user(db):
    """Factory: ``make_user(username="ada", storage_quota_bytes=10)``; password is ``DEFAULT_PASSWORD``."""

    def make(**fields):
        return UserFactory(**fields)

    return make


@pytest.fixture
def password():
    return DEFAULT_PASSWORD


@pytest.fixture
def user(make_user):
    return make_user(username="alice")


@pytest.fixture
def other_user(make_user):
    return make_user(username="bob")


@pytest.fixture
def api_client():
    """An unauthenticated DRF client."""
    return APIClient()


@pytest.fixture
def auth_client(client, user):
    """Django test client signed in as ``user`` (for HTML views)."""
    client.force_login(user)
    return client


@pytest.fixture
def auth_api_client(user):
    """DRF client authenticated as ``user``."""
    api = APIClient()
    api.force_authenticate(user=user)
    return api
