"""Typed-text search of the Analysis view answered by a real realtime worker process over Redis (the run itself
is computed in this process first, eagerly). Skipped without REDIS_URL unless CI, as the other real-worker tests."""

from __future__ import annotations

import re
from html import unescape

from django.core.cache import cache

from analysis import workspace
from analysis.runs import realtime
from analysis.models import StepKind
from analysis.workspace.explore import presenter as explore_presenter
from tests.support.clients import client_for
from tests.support.real_workers import REAL_WORKER_MARKS

pytestmark = REAL_WORKER_MARKS


def test_a_typed_sentence_is_answered_by_the_realtime_worker(people, finished_run, celery, settings):
    workspace.loaded.clear()
    explore_presenter._column_source.cache_clear()
    settings.NEUROX_REALTIME_TIMEOUT = 60  # the cold first call imports torch and loads the model
    cache.delete(realtime._LIVE_KEY)
    celery("worker", "-Q", "realtime", "--concurrency", "1", name="realtime")
    anova = finished_run.steps.get(kind=StepKind.RANKING, params__method="anova")
    client = client_for(people, "viewer")
    response = client.get(f"/projects/{finished_run.project_id}/runs/{finished_run.pk}/analysis/typed/"
                          f"?ranking={anova.pk}&pools=L1:3&text=the+dog+ran+to+the+park+.")
    html = unescape(response.content.decode())
    assert response.status_code == 200
    assert "z-score against the corpus statistics" in html, html
    assert re.findall(r'<tr><th scope="row">([^<]+)</th>', html) == "the dog ran to the park .".split()
    assert len(re.findall(r'aria-label="[^"]*: L1:3 = ', html)) == 7  # the pool's row of the typed sentence
