"""Typed-text search of the Analysis view answered by a real realtime worker process over Redis (the run itself
is computed in this process first, eagerly). Skipped without REDIS_URL unless CI, as the other real-worker tests."""

from __future__ import annotations

import re
from html import unescape

from django.core.cache import cache
from django.test import Client

from analysis import explore, realtime, workspace
from analysis.models import StepKind
from tests.pipeline_tests.conftest import attached, folders, people, tiny_bert  # noqa: F401
from tests.pipeline_tests.test_real_workers import celery  # noqa: F401  (the worker-process fixture)
from tests.pipeline_tests.test_real_workers import pytestmark as real_worker_marks
from tests.pipeline_web_tests.conftest import finished_run  # noqa: F401

pytestmark = real_worker_marks


def test_a_typed_sentence_is_answered_by_the_realtime_worker(people, finished_run, celery, settings):  # noqa: F811
    workspace.loaded.clear()
    explore._column_source.cache_clear()
    settings.NEUROX_REALTIME_TIMEOUT = 60  # the cold first call imports torch and loads the model
    cache.delete(realtime._LIVE_KEY)
    celery("worker", "-Q", "realtime", "--concurrency", "1", name="realtime")
    anova = finished_run.steps.get(kind=StepKind.RANKING, params__method="anova")
    client = Client()
    client.force_login(people["viewer"])
    response = client.get(f"/projects/{finished_run.project_id}/runs/{finished_run.pk}/analysis/typed/"
                          f"?ranking={anova.pk}&pools=L1:3&text=the+dog+ran+to+the+park+.")
    html = unescape(response.content.decode())
    assert response.status_code == 200
    assert "z-score against the corpus statistics" in html, html
    assert re.findall(r'<tr><th scope="row">([^<]+)</th>', html) == "the dog ran to the park .".split()
    assert len(re.findall(r'aria-label="[^"]*: L1:3 = ', html)) == 7  # the pool's row of the typed sentence
