"""Error pages (issue #6, item 10): styled 400/403/404/500 pages for people in every mode, JSON under /api/,
Django's technical pages only when a developer turns them on, and a 403 that says why without a traceback."""

import json
import logging

import pytest
from django.test import Client
from django.urls import reverse

from projects.models import Project, Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

TECHNICAL_PAGE_MARKS = ("Using the URLconf", "Django tried these URL patterns", "Traceback", "DEBUG = True")


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    """Every test runs as in production (DEBUG off) and as with the README's first command (DEBUG on)."""
    settings.DEBUG = request.param
    settings.NEUROX_DEBUG_PAGES = False
    return request.param


@pytest.fixture
def failing_site(settings):
    settings.ROOT_URLCONF = "tests.site_tests.error_urls"
    return Client(raise_request_exception=False)


def assert_styled_page(response, status, *texts):
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "site.css" in html  # the site's own layout
    for mark in TECHNICAL_PAGE_MARKS:
        assert mark not in html, f"{mark!r}: a technical page"
    for text in texts:
        assert text in html, html


def assert_api_error(response, status, code):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"detail", "code"}
    assert body["code"] == code
    assert body["detail"].endswith(".") and len(body["detail"]) > 10
    return body


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_a_mistyped_address_gets_a_styled_404_without_the_route_list(client, debug, signed_in, user):
    if signed_in:
        client.force_login(user)
    response = client.get("/projetcs/42/")
    assert_styled_page(response, 404, "Page not found", "Check the address")
    assert "accounts/" not in response.content.decode().split('id="main"')[1]  # no routes listed


def test_a_404_raised_by_a_view_says_what_is_missing(client, debug, user):
    client.force_login(user)
    assert_styled_page(client.get("/projects/999999/"), 404, "No such project.")


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing/", "/api/nothing", "/api/v1/projects/999999/edit/"])
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_unknown_api_paths_get_json(client, debug, signed_in, user, path):
    if signed_in:
        client.force_login(user)
    assert_api_error(client.get(path), 404, "not_found")


def test_the_missing_slash_redirect_still_happens(client, debug, user):
    client.force_login(user)
    response = client.get("/projects")
    assert response.status_code == 301 and response["Location"] == "/projects/"


def test_a_viewer_is_told_why_and_no_traceback_is_logged(client, debug, caplog):
    project = ProjectFactory(name="Probing")
    viewer = MembershipFactory(project=project, user=UserFactory(username="vera"), role=Role.VIEWER).user
    client.force_login(viewer)
    with caplog.at_level(logging.INFO):
        response = client.post(reverse("projects:edit", args=[project.pk]), {"name": "Renamed"})
    assert_styled_page(response, 403, "Not allowed",
                       "Viewers cannot change this project; ask an owner for the editor role.")
    assert Project.objects.get(pk=project.pk).name == "Probing"
    forbidden = [record for record in caplog.records if "Forbidden" in record.getMessage()]
    assert len(forbidden) == 1  # one line saying what happened ...
    assert all(record.exc_info is None for record in caplog.records)  # ... and no traceback anywhere


def test_a_failed_csrf_check_says_what_to_do(debug, user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse("projects:list"), {"name": "No token"})
    assert_styled_page(response, 403, "Reload the page and try again.")
    assert not Project.objects.exists()


def test_a_server_error_is_a_styled_page_and_is_logged(failing_site, debug, caplog):
    with caplog.at_level(logging.ERROR):
        response = failing_site.get("/broken/")
    assert_styled_page(response, 500, "Something went wrong")
    assert "hunter2" not in response.content.decode()
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None  # the developer gets the traceback in the log


def test_a_server_error_under_the_api_is_json(failing_site, debug):
    body = assert_api_error(failing_site.get("/api/broken/"), 500, "server_error")
    assert "hunter2" not in body["detail"]


def test_a_bad_request_is_a_styled_page(failing_site, debug):
    assert_styled_page(failing_site.get("/bad/"), 400, "The page number must be a whole number.")
    response = failing_site.get("/suspicious/")
    assert_styled_page(response, 400, "The request could not be understood.")
    assert "/etc/passwd" not in response.content.decode()


def test_a_developer_can_turn_the_technical_pages_on(client, settings, user):
    settings.DEBUG = True
    settings.NEUROX_DEBUG_PAGES = True
    client.force_login(user)
    assert "Using the URLconf" in client.get("/projetcs/").content.decode()


def test_the_technical_pages_stay_off_without_debug(client, settings, user):
    settings.DEBUG = False
    settings.NEUROX_DEBUG_PAGES = True
    client.force_login(user)
    assert_styled_page(client.get("/projetcs/"), 404, "Page not found")
