"""Shared by the neuron-page, downloads and provenance tests: the pipeline's finished run (tiny BERT over a
40-sentence corpus, computed eagerly), a two-model run with a cross-model ranking, clients per role, and a
fresh per-process result cache (results are cached by content key, and every test has its own results folder)."""

from __future__ import annotations

import pytest
from django.test import Client

from analysis import services
from analysis.workspace import loaded
from projects.services.attachments import attach_upload
from tests.engine_tests.tiny_models import make_tiny_model
from tests.pipeline_tests.conftest import request_for, upload_model
from tests.pipeline_web_tests.conftest import (  # noqa: F401 (fixtures)
    MEMBERS, ROLES, attached, expected_status, finished_run, folders, people, queued_run, tiny_bert)


@pytest.fixture(autouse=True)
def fresh_results_cache():
    loaded.clear()
    yield
    loaded.clear()


def client_for(people, who: str) -> Client:
    client = Client()
    if who != "anonymous":
        client.force_login(people[who])
    return client


def page_status(who: str, ok: int = 200) -> int:
    """Members see a run's pages; strangers get 404, anonymous visitors are sent to sign in."""
    return {"anonymous": 302, "stranger": 404}.get(who, ok)


def run_url(run, tail: str) -> str:
    return f"/projects/{run.project_id}/runs/{run.pk}/{tail}"


@pytest.fixture(scope="session")
def other_tiny_bert(tmp_path_factory):
    return make_tiny_model("bert", tmp_path_factory.mktemp("tiny-bert-2"), seed=1)


@pytest.fixture
def two_model_run(people, attached, other_tiny_bert, django_capture_on_commit_callbacks):
    """Two tiny BERTs (different seeds) over the same corpus, with statistics and a cross-model maxcorr."""
    owner = people["owner"]
    second = upload_model(owner, other_tiny_bert, name="tiny bert two")
    attach_upload(owner, people["project"], second)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(owner, people["project"], {
            **request_for(attached), "models": [attached["model"].pk, second.pk],
            "rankings": [{"method": "probeless", "bootstrap": 0}], "crossmodel": [{"method": "maxcorr"}]})
    run.refresh_from_db()
    return run
