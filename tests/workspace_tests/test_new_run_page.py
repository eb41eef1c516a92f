"""The run page as the loading screen: a workspace tab, each step's bar with its unit, done / total and time
left, and the websocket message that carries the run's success swapping in the way into its views."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client
from django.utils import timezone

from analysis.runs import consumers, selectors, services
from analysis.models import Run, RunState, Step, StepKind
from neurox_site.asgi import application
from tests.support.clients import client_for


@pytest.fixture
def bare_run(people):
    """A run with a running extraction halfway through (started 60 s ago) and a pending ranking."""
    run = Run.objects.create(project=people["project"], created_by=people["owner"], request={}, state="running")
    started = timezone.now() - timedelta(seconds=60)
    Step.objects.create(run=run, kind=StepKind.EXTRACT, title="Extract activations: tiny × toy", result_key="k1",
                        queue="gpu", state="running", done=140, total=280, unit="words", started_at=started)
    Step.objects.create(run=run, kind=StepKind.RANKING, title="Ranking lca: tiny", result_key="k2", queue="cpu",
                        unit="epochs")
    return run


def page_of(run):
    return f"/projects/{run.project_id}/runs/{run.pk}/"


@pytest.mark.django_db
def test_the_run_page_is_the_progress_tab_with_time_left(people, bare_run):
    html = client_for(people, "viewer").get(page_of(bare_run)).content.decode()
    assert 'aria-label="Views of this run"' in html and 'aria-current="page">Progress</a>' in html
    assert "140 / 280 words" in html and 'aria-valuetext="140 of 280 words"' in html
    assert "about 1 min left" in html  # 140 words in 60 s: 140 more take about as long
    assert 'id="run-finished"' in html and "The run has finished" not in html


@pytest.mark.django_db
def test_time_left_follows_the_rate_since_the_step_started(people, bare_run):
    now = timezone.now()
    step = bare_run.steps.get(kind=StepKind.EXTRACT)
    Step.objects.filter(pk=step.pk).update(started_at=now - timedelta(seconds=10), done=20, total=100)
    by_title = {s.title: s.time_left for s in selectors.steps_with_time_left(bare_run, now=now)}
    assert by_title == {"Extract activations: tiny × toy": "about 40 s left", "Ranking lca: tiny": ""}
    Step.objects.filter(pk=step.pk).update(started_at=now - timedelta(hours=1), done=1, total=100)
    assert selectors.steps_with_time_left(bare_run, now=now)[0].time_left == "about 99.0 h left"
    Step.objects.filter(pk=step.pk).update(done=0)  # nothing counted yet: no rate to go by
    assert selectors.steps_with_time_left(bare_run, now=now)[0].time_left == ""


@pytest.mark.django_db
def test_a_succeeded_run_page_leads_to_its_views(people, bare_run):
    Run.objects.filter(pk=bare_run.pk).update(state=RunState.SUCCEEDED)
    Step.objects.filter(run=bare_run).update(state="succeeded", done=280)
    html = client_for(people, "viewer").get(page_of(bare_run)).content.decode()
    assert "The run has finished" in html
    for tail in ("analysis", "ablation", "manipulation"):
        assert f'href="{page_of(bare_run)}{tail}/"' in html


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_the_finishing_message_swaps_in_the_views(people, bare_run, monkeypatch):
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 60)  # only the wake-up of the finishing step
    cookie = await database_sync_to_async(_session_cookie)(people["viewer"])
    socket = WebsocketCommunicator(application, f"/ws/runs/{bare_run.pk}/",
                                   headers=[(b"host", b"testserver"), (b"origin", b"http://testserver"),
                                            (b"cookie", cookie)])
    try:
        assert (await socket.connect())[0]
        snapshot = await socket.receive_from(timeout=2)
        assert '<section id="run-finished"' in snapshot and "The run has finished" not in snapshot
        await database_sync_to_async(_finish)(bare_run)
        update = await socket.receive_from(timeout=2)
        assert '<section id="run-finished" class="run-finished" hx-swap-oob="true"' in update
        assert "The run has finished" in update and f'href="{page_of(bare_run)}analysis/"' in update
        assert "Succeeded" in update  # the status fragment in the same message
        await socket.disconnect()
    finally:
        await database_sync_to_async(connections.close_all)()


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def _finish(run) -> None:
    """What the last step's finish does: its row, then the run's, then a log line (and its wake-up)."""
    Step.objects.filter(run=run).update(state="succeeded", done=280, total=280)
    Run.objects.filter(pk=run.pk).update(state=RunState.SUCCEEDED, finished_at=timezone.now())
    services.write_log(run.pk, ["Run succeeded."])
