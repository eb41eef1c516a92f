"""Adding a step kind is one module: the step type below (how many words of each label a store holds), defined
here and nowhere else, is asked for by a field of the run request, planned by ``services.plan_run``, sent to its
queue, computed by a real worker process, kept as a ready result, and downloaded through the API.

The worker imports this module through ``NEUROX_STEP_MODULES``, as it would a site's own kinds; the test process
registers it by importing it (pytest does). The eager variant runs the same path in-process (no Redis needed).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from rest_framework.test import APIClient

from analysis.runs import services
from analysis.engine.hashing import sha256_json
from analysis.models import Result, ResultKind, RunState, StepState, results_root
from analysis.steps.registry import CPU, Download, StepType, register
from analysis.steps.storage import open_store, publish_json
from tests.support.real_workers import REAL_WORKER_MARKS, run_state, wait_for
from tests.support.runs import request_for

THIS_MODULE = __name__


@register
class LabelCounts(StepType):
    kind = "label_counts"
    queue = CPU
    result_kind = ResultKind.STATISTICS
    inline = True
    request_field = "label_counts"
    downloads = (Download("label_counts.json", "JSON", "application/json", "json"),)

    def clean_request(self, value):
        if not isinstance(value, bool):
            raise ValueError("label_counts is true or false.")
        return value

    def plan(self, value, store_key, model, selection, seed):
        params = {"store_key": store_key}
        return [(f"Label counts: {model.name}", params, sha256_json({"result": "label_counts", **params}))]

    def compute(self, step, job):
        relative = f"label_counts/{step.result_key}.json"
        store = open_store(step.params["store_key"])
        counts = Counter(store.label_names[i] for i in store.labels if i >= 0)
        job.progress(1, 1, "store")
        publish_json(results_root() / relative, {"counts": dict(sorted(counts.items()))})
        return relative, {"labels": len(counts)}


def check_the_run(run, people, attached):
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    step = run.steps.get(kind="label_counts")
    extract = run.steps.get(kind="extract")
    assert step.state == StepState.SUCCEEDED and step.queue == CPU and list(step.needs.all()) == [extract]
    result = Result.objects.get(key=step.result_key)
    assert result.kind == ResultKind.STATISTICS and result.meta["labels"] > 1
    api = APIClient()
    api.force_authenticate(people["viewer"])
    response = api.get(f"/api/v1/runs/{run.pk}/downloads/{step.pk}/label_counts.json")
    assert response.status_code == 200, response.content
    counts = json.loads(b"".join(response.streaming_content))["counts"]
    store = open_store(extract.result_key)
    assert sum(counts.values()) == int((store.labels >= 0).sum()) and set(counts) <= set(store.label_names)
    listed = api.get(f"/api/v1/runs/{run.pk}/results/").json()
    assert {"kind": "label_counts", "data": {"counts": counts}}.items() <= next(
        r for r in listed if r["kind"] == "label_counts").items()


def test_a_kind_asks_for_valid_values_like_the_built_in_ones(people, attached):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.plan_run(people["project"], request_for(attached, label_counts="yes"))
    assert refused.value.message_dict == {"label_counts": ["label_counts is true or false."]}
    plan = services.plan_run(people["project"], request_for(attached, label_counts=True))
    assert [s.kind for s in plan.steps].count("label_counts") == 1
    assert "label_counts" not in [s.kind for s in services.plan_run(people["project"], request_for(attached)).steps]


def test_a_new_kind_runs_through_the_pipeline_in_process(people, attached, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(attached, label_counts=True))
    check_the_run(run, people, attached)


def real_workers(test):
    for mark in REAL_WORKER_MARKS:
        test = mark(test)
    return test


@real_workers
def test_a_new_kind_runs_on_a_real_worker(people, attached, celery):
    workers = [celery("worker", "-Q", queue, "--concurrency", "1", name=queue, NEUROX_STEP_MODULES=THIS_MODULE)
               for queue in ("gpu", "cpu")]
    run = services.create_run(people["owner"], people["project"], request_for(attached, label_counts=True))
    wait_for(lambda: run_state(run) in (RunState.SUCCEEDED, RunState.FAILED), 90, "the run to finish", workers)
    check_the_run(run, people, attached)
    assert run.steps.get(kind="label_counts").worker.startswith("cpu@")
