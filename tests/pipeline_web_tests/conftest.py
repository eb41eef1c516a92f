"""Fixtures for the web side of the pipeline: the pipeline tests' project (one user per role), tiny model and
corpus, plus clients per role and runs in a known state."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from analysis import services
from tests.pipeline_tests.conftest import attached, folders, people, request_for, tiny_bert  # noqa: F401

ROLES = ("owner", "editor", "viewer", "stranger", "anonymous")
MEMBERS = {"owner", "editor", "viewer"}
WRITERS = {"owner", "editor"}


def api_client_for(people, who: str) -> APIClient:
    client = APIClient()
    if who != "anonymous":
        client.force_authenticate(user=people[who])
    return client


def expected_status(who: str, allowed: set[str], ok: int = 200) -> int:
    """What ``who`` gets from an endpoint that ``allowed`` may use: strangers never see the run (404), a
    member without the role gets 403, anonymous clients 401."""
    if who == "anonymous":
        return 401
    if who == "stranger":
        return 404
    return ok if who in allowed else 403


@pytest.fixture
def queued_run(people, attached, django_capture_on_commit_callbacks):
    """A run whose messages were never sent: its extraction step stays queued, the rest pending."""
    with django_capture_on_commit_callbacks(execute=False):
        return services.create_run(people["owner"], people["project"], request_for(attached))


@pytest.fixture
def finished_run(people, attached, django_capture_on_commit_callbacks):
    """A run computed in-process (eager) to the end: a probeless ranking, an anova ranking with confidence,
    statistics, and a small probe-ablation curve."""
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(
            attached, probe_ablation={"percents": [50, 100], "random_seeds": 1, "modes": ["zero_out"]}))
    run.refresh_from_db()
    return run
