"""The realtime path with a real realtime worker process against Redis (skipped without REDIS_URL unless CI)."""

from __future__ import annotations

import time

from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from analysis.runs import realtime
from tests.support.real_workers import REAL_WORKER_MARKS

pytestmark = REAL_WORKER_MARKS


def post(user, project, kind, body):
    client = APIClient()
    client.force_authenticate(user)
    return client.post(reverse(f"project-realtime-{kind}", args=[project.pk]), body, format="json")


def test_answered_by_a_realtime_worker_with_the_model_kept_loaded(people, attached, celery, settings):
    settings.NEUROX_REALTIME_TIMEOUT = 60  # the cold first call imports torch and loads the model on a shared box
    cache.delete(realtime._LIVE_KEY)
    worker = celery("worker", "-Q", "realtime", "--concurrency", "1", name="realtime")
    project, viewer = people["project"], people["viewer"]
    body = {"model": attached["model"].pk, "sentence": "the cat sat on the mat .", "top_k": 4}
    first = post(viewer, project, "activations", body)
    assert first.status_code == 200, first.content
    assert first.json()["cache"] == {"hit": False, "loads": 1, "models": 1}
    second = post(viewer, project, "manipulate", {"model": attached["model"].pk,
                                                  "sentence": "the [MASK] sat on the mat .",
                                                  "edits": [{"neuron": "L2:1", "operation": "zero"}]})
    assert second.status_code == 200, second.content
    data = second.json()
    assert data["cache"] == {"hit": True, "loads": 1, "models": 1}  # no reload
    assert data["task"] == "fill-mask" and len(data["sentences"][0]["masks"]) == 1
    assert "torch threads for realtime work: 1" in worker.log(tail=10**6)
    bad = post(viewer, project, "manipulate", {**body, "edits": [{"neuron": "mlp.L0:64"}]})
    assert bad.status_code == 400 and "unit 64 does not exist" in bad.json()["fields"]["edits"][0]


def test_no_realtime_worker_is_a_quick_503(people, attached, celery):
    cache.delete(realtime._LIVE_KEY)
    celery("worker", "-Q", "gpu,cpu", "--concurrency", "1", name="other")  # not on the realtime queue
    started = time.monotonic()
    answer = post(people["owner"], people["project"], "activations",
                  {"model": attached["model"].pk, "sentence": "the cat"})
    elapsed = time.monotonic() - started
    assert answer.status_code == 503 and answer.json()["code"] == "realtime_unavailable"
    assert "No realtime worker is running; start one with" in answer.json()["detail"]
    assert elapsed < 2.0


def test_a_slow_answer_is_a_504(people, attached, celery, settings):
    cache.delete(realtime._LIVE_KEY)
    celery("worker", "-Q", "realtime", "--concurrency", "1", name="realtime")
    settings.NEUROX_REALTIME_TIMEOUT = 0.001  # no real answer comes back that fast
    answer = post(people["viewer"], people["project"], "activations",
                  {"model": attached["model"].pk, "sentence": "the cat"})
    assert answer.status_code == 504 and answer.json()["code"] == "realtime_timeout"
    assert "did not answer within" in answer.json()["detail"]
    assert cache.get(realtime._LIVE_KEY) is None  # asked again next time
