"""The run pages: the permission matrix, what a viewer sees (no cancel or retry), cancel and retry from the page
(htmx and plain), and the "Start a run" button with its defaults."""

from __future__ import annotations

import pytest

from analysis.runs import services
from analysis.models import LogLine, Run, RunState, Step
from tests.support.clients import client_for
from tests.support.roles import MEMBERS, ROLES, WRITERS, page_status
from tests.support.runs import two_runs_over_a_limit_of_one

pytestmark = pytest.mark.django_db


def run_page(run, tail=""):
    return f"/projects/{run.project_id}/runs/{run.pk}/{tail}"


@pytest.mark.parametrize("who", ROLES)
def test_the_run_page_is_for_members(people, queued_run, who):
    response = client_for(people, who).get(run_page(queued_run))
    assert response.status_code == page_status(who, MEMBERS)
    if response.status_code == 200:
        html = response.content.decode()
        assert f'ws-connect="/ws/runs/{queued_run.pk}/"' in html
        assert "Extract activations: tiny bert × toy.conllu" in html and "Run created by olivia" in html
        assert ("Cancel run" in html) == (who in WRITERS)
    elif who == "anonymous":
        assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("who", ROLES)
def test_the_run_list_is_for_members(people, queued_run, who):
    response = client_for(people, who).get(f"/projects/{people['project'].pk}/runs/")
    assert response.status_code == page_status(who, MEMBERS)
    if response.status_code == 200:
        html = response.content.decode()
        assert run_page(queued_run) in html
        assert ("Start a run" in html) == (who in WRITERS)


def test_a_run_is_only_found_under_its_own_project(people, queued_run):
    from tests.factories import ProjectFactory

    elsewhere = ProjectFactory(owner=people["owner"])
    response = client_for(people, "owner").get(f"/projects/{elsewhere.pk}/runs/{queued_run.pk}/")
    assert response.status_code == 404


def test_a_finished_run_shows_reused_steps_and_no_cancel(people, finished_run, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        again = services.create_run(people["owner"], people["project"], finished_run.request)
    html = client_for(people, "owner").get(run_page(again)).content.decode()
    assert html.count('<span class="badge">reused</span>') == again.steps.count()
    assert "Cancel run" not in html and "Retry run" not in html


@pytest.mark.parametrize("who", ROLES)
def test_cancelling_from_the_page_needs_the_editor_role(people, queued_run, who):
    response = client_for(people, who).post(run_page(queued_run, "cancel/"), HTTP_HX_REQUEST="true")
    assert response.status_code == page_status(who, WRITERS)
    queued_run.refresh_from_db()
    assert queued_run.state == (RunState.CANCELLED if who in WRITERS else RunState.QUEUED)
    if who in WRITERS:
        assert "Retry run" in response.content.decode()  # the status fragment htmx swaps in


@pytest.mark.parametrize("who", ROLES)
def test_retrying_from_the_page_needs_the_editor_role(people, queued_run, who, django_capture_on_commit_callbacks):
    services.cancel_run(people["owner"], queued_run)
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(people, who).post(run_page(queued_run, "retry/"))
    assert response.status_code == page_status(who, WRITERS, ok=302)
    queued_run.refresh_from_db()
    assert queued_run.state == (RunState.QUEUED if who in WRITERS else RunState.CANCELLED)


def test_cancelling_a_finished_run_says_so_on_the_page(people, queued_run):
    services.cancel_run(people["owner"], queued_run)
    response = client_for(people, "owner").post(run_page(queued_run, "cancel/"), HTTP_HX_REQUEST="true")
    assert "This run has already finished; there is nothing to cancel." in response.content.decode()


@pytest.mark.parametrize("who", ROLES)
def test_start_a_run_uses_the_defaults_and_needs_the_editor_role(people, attached, who,
                                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(people, who).post(f"/projects/{people['project'].pk}/runs/")
    if who not in WRITERS:
        assert response.status_code == page_status(who, WRITERS)
        assert Run.objects.count() == 0
        return
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == run_page(run)
    assert run.request["models"] == [attached["model"].pk] and run.request["corpus"] == attached["corpus"].pk
    assert [r["method"] for r in run.request["rankings"]] == ["lca", "anova", "probeless"]
    assert run.request["statistics"] is True and run.request["neuron_sets"] == ["hidden"]


def test_start_a_run_without_a_corpus_says_what_is_missing_and_stores_nothing(people):
    response = client_for(people, "owner").post(f"/projects/{people['project'].pk}/runs/", follow=True)
    html = response.content.decode()
    assert "Choose at least one model of this project" in html and "Choose one of this project" in html
    assert Run.objects.count() == Step.objects.count() == LogLine.objects.count() == 0


def test_a_run_over_its_creators_limit_says_it_waits(people, attached, django_capture_on_commit_callbacks):
    first, second = two_runs_over_a_limit_of_one(people, attached, django_capture_on_commit_callbacks)
    client = client_for(people, "viewer")
    second_page = client.get(run_page(second)).content.decode()
    assert 'id="run-waiting">Waiting: 1 of your runs are active and your limit is 1 at once' in second_page
    assert "position 1 in the gpu queue" in client.get(run_page(first)).content.decode()
    assert 'id="run-waiting"' not in client.get(run_page(first)).content.decode()


@pytest.mark.parametrize("who", ["owner", "editor", "viewer"])
def test_the_project_page_leads_to_its_runs(people, who):
    project = people["project"]
    html = client_for(people, who).get(f"/projects/{project.pk}/").content.decode()
    assert f'href="/projects/{project.pk}/runs/"' in html
    assert ("Start a run" in html) == (who in WRITERS)
