"""The account's Usage page (use against limits) and the operator's page in the admin (issue #18 items 3 and 5)."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from accounts.models import QuotaGroup
from analysis.models import Result, Run, RunState, Step, StepKind, StepState
from analysis.runs import services
from analysis.runs.selectors import compute_seconds_used, results_bytes_of
from projects.selectors import storage_used_by
from tests.factories import UserFactory
from tests.support.runs import request_for

pytestmark = pytest.mark.django_db


def computed(user, project, request, capture) -> Run:
    with capture(execute=True):
        run = services.create_run(user, project, request)
    run.refresh_from_db()
    return run


def cell(page: str, attribute: str, section: str) -> str:
    """The value of ``data-<attribute>`` inside the section with id ``section``."""
    body = page.split(f'id="{section}"', 1)[1].split("</section>", 1)[0]
    return re.findall(rf'data-{attribute}="([^"]*)"', body)


# ------------------------------------------------------------------------------------------------ the Usage page


def test_the_usage_page_shows_storage_compute_and_runs_against_the_limits(
        client, people, attached, django_capture_on_commit_callbacks):
    owner = people["owner"]
    group = QuotaGroup.objects.create(name="Linguistics", compute_quota_seconds=3600, storage_quota_bytes=10**9)
    owner.quota_group, owner.max_run_compute_seconds = group, 120
    owner.save()
    computed(owner, people["project"], request_for(attached), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        services.create_run(owner, people["project"], request_for(attached, seed=5))  # queued: one active
    client.force_login(owner)
    page = client.get("/accounts/usage/").content.decode()
    uploads, results = storage_used_by(owner), results_bytes_of(owner)
    assert results > 0
    assert cell(page, "bytes", "usage-storage") == [str(uploads), str(results), str(10**9)]
    used = compute_seconds_used(owner)
    assert used > 0
    assert cell(page, "seconds", "usage-compute") == [f"{used:.0f}", "3600", "120"]
    assert "in the last 30 days" in page and "“Linguistics”" in page
    assert cell(page, "active", "usage-runs") == ["1"]
    assert 'href="/accounts/usage/"' in client.get("/").content.decode()  # linked from every page's top bar


def test_the_usage_page_needs_a_sign_in(client):
    response = client.get("/accounts/usage/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# ------------------------------------------------------------------------------------------------ the operator's page


@pytest.fixture
def busy(queued_run, monkeypatch):
    """A run whose extraction runs on gpu@node7 (cuda) and a second run's extraction queued; the broker holds 1
    message per queue; cpu@node8 answers the ping and holds nothing."""
    extract = queued_run.steps.get(kind=StepKind.EXTRACT)
    Step.objects.filter(pk=extract.pk).update(state=StepState.RUNNING, worker="gpu@node7", device="cuda",
                                              heartbeat_at=timezone.now(), started_at=timezone.now(), attempts=1)
    Run.objects.filter(pk=queued_run.pk).update(state=RunState.RUNNING)
    monkeypatch.setattr("analysis.steps.queues.messages_waiting", lambda queue: 1)
    monkeypatch.setattr("analysis.admin._ping_workers", lambda: {"gpu@node7": True, "cpu@node8": True})
    return queued_run


def root():
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def test_the_operator_page_shows_queues_workers_runs_and_use(client, people, attached, busy,
                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        waiting = services.create_run(people["editor"], people["project"], request_for(attached, seed=9))
    client.force_login(root())
    index = client.get("/admin/").content.decode()
    assert 'href="/admin/operations/"' in index
    response = client.get("/admin/operations/")
    assert response.status_code == 200
    page = response.content.decode()
    queues = {q["name"]: q for q in response.context["queues"]}
    assert queues["gpu"]["queued"] == 1 and queues["gpu"]["running"] == 1 and queues["gpu"]["messages"] == 1
    assert '<tr class="queue" data-queue="gpu"><td>gpu</td><td class="queued">1</td>' in page
    workers = {w["name"]: w for w in response.context["workers"]}
    assert workers["gpu@node7"]["host"] == "node7" and workers["gpu@node7"]["device"] == "cuda"
    assert workers["gpu@node7"]["step"].pk == busy.steps.get(kind=StepKind.EXTRACT).pk
    assert workers["cpu@node8"]["step"] is None and "idle" in page
    per_user = {row["created_by__username"]: row for row in response.context["runs_per_user"]}
    assert (per_user["olivia"]["running"], per_user["olivia"]["waiting"]) == (1, 0)
    assert (per_user["eddie"]["running"], per_user["eddie"]["waiting"]) == (0, 1)
    assert f"Cancel run {waiting.pk}" in page and f"Cancel run {busy.pk}" in page
    usage = {row["user"].username: row for row in response.context["usage"]}
    assert usage["olivia"]["storage"] == storage_used_by(people["owner"])
    assert f'href="/admin/accounts/user/{people["owner"].pk}/change/"' in page


def test_the_operator_page_is_for_staff_with_the_permission(client, people, busy):
    client.force_login(people["owner"])
    response = client.get("/admin/operations/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.logout()
    assert client.get("/admin/operations/").status_code == 302
    client.force_login(UserFactory(username="helpdesk", is_staff=True))  # staff without "view run"
    assert client.get("/admin/operations/").status_code == 403
    assert client.post(f"/admin/operations/runs/{busy.pk}/cancel/").status_code == 403
    assert 'href="/admin/operations/"' not in client.get("/admin/").content.decode()
    busy.refresh_from_db()
    assert busy.state == RunState.RUNNING


def test_an_operator_cancels_anyones_run(client, people, busy):
    client.force_login(root())
    response = client.post(f"/admin/operations/runs/{busy.pk}/cancel/", follow=True)
    assert f"Run {busy.pk} of olivia cancelled." in response.content.decode()
    busy.refresh_from_db()
    assert busy.state == RunState.CANCELLED
    assert busy.log_lines.filter(text="Run cancelled by root.").exists()
    response = client.post(f"/admin/operations/runs/{busy.pk}/cancel/", follow=True)
    assert "already finished" in response.content.decode()


def test_an_operator_reclaims_unreferenced_results(client, people, attached, django_capture_on_commit_callbacks):
    run = computed(people["owner"], people["project"], request_for(attached), django_capture_on_commit_callbacks)
    count = Result.objects.count()
    run.delete()
    client.force_login(root())
    assert f'<span id="unreferenced-count">{count}</span>' in client.get("/admin/operations/").content.decode()
    response = client.post("/admin/operations/reclaim/", follow=True)
    assert f"Reclaimed {count} result(s)" in response.content.decode()
    assert not Result.objects.exists()
