"""A finished run for the Manipulation view's tests: the pipeline tests' tiny BERT and 40-sentence UPOS corpus,
computed in-process (eager) with a probeless ranking and statistics; the realtime manipulate task then runs in
the test process too (CELERY_TASK_ALWAYS_EAGER), on the same code path as a realtime worker."""

from __future__ import annotations

import pytest
from django.test import Client

from analysis import realtime, services
from tests.pipeline_tests.conftest import attached, folders, people, request_for, tiny_bert  # noqa: F401

ROLES = ("owner", "editor", "viewer", "stranger", "anonymous")


@pytest.fixture
def manip_run(people, attached, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(realtime, "_cache", None)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(
            attached, rankings=[{"method": "probeless", "bootstrap": 0}], statistics=True))
    run.refresh_from_db()
    assert run.state == "succeeded", run.error
    return run


def client_for(people, who: str) -> Client:
    client = Client()
    if who != "anonymous":
        client.force_login(people[who])
    return client
