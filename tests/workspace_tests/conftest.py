"""Runs for the workspace views' tests, on the shared ``people`` / ``attached`` fixtures (tests/fixtures/)."""

from __future__ import annotations

import pytest

from analysis.runs import realtime, services
from analysis.workspace import loaded
from projects.services.attachments import attach_upload
from tests.support.runs import request_for
from tests.support.uploads import upload_model


@pytest.fixture
def fresh_results_cache():
    """A fresh per-process result cache (results are cached by content key, and every test has its own results
    folder); the neuron-page, downloads and provenance tests take it with ``usefixtures``."""
    loaded.clear()
    yield
    loaded.clear()


@pytest.fixture
def manip_run(people, attached, django_capture_on_commit_callbacks, monkeypatch):
    """A finished run for the Manipulation view: a probeless ranking and statistics, computed in-process
    (eager); the realtime manipulate task then runs in the test process too (CELERY_TASK_ALWAYS_EAGER), on the
    same code path as a realtime worker."""
    monkeypatch.setattr(realtime, "_cache", None)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(
            attached, rankings=[{"method": "probeless", "bootstrap": 0}], statistics=True))
    run.refresh_from_db()
    assert run.state == "succeeded", run.error
    return run


@pytest.fixture
def two_model_run(people, attached, other_bert, django_capture_on_commit_callbacks):
    """Two tiny BERTs (different seeds) over the same corpus, with statistics and a cross-model maxcorr."""
    owner = people["owner"]
    second = upload_model(owner, other_bert, name="tiny bert two")
    attach_upload(owner, people["project"], second)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(owner, people["project"], {
            **request_for(attached), "models": [attached["model"].pk, second.pk],
            "rankings": [{"method": "probeless", "bootstrap": 0}], "crossmodel": [{"method": "maxcorr"}]})
    run.refresh_from_db()
    return run
