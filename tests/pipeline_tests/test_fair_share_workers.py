"""Fair share with a real worker: one cpu worker, person A's 30 queued steps and person B's one new step: B's
step starts next, on Redis and on the embedded broker (kombu's file-system transport, what ``scripts/serve``
uses). The steps are naps of a step kind defined here (the worker imports this module through
``NEUROX_STEP_MODULES``), so the test measures the order, not a computation."""

from __future__ import annotations

import contextlib
import time

import pytest
from celery import current_app as app

from analysis.engine.hashing import sha256_json
from analysis.models import ResultKind, RunState, StepState, results_root
from analysis.runs import services
from analysis.steps.registry import CPU, StepType, register
from analysis.steps.storage import publish_json
from tests.support.real_workers import REAL_WORKER_MARKS, run_state, wait_for
from tests.support.runs import request_for

THIS_MODULE = __name__
NAP_SECONDS = 0.4


@register
class Nap(StepType):
    kind = "nap"
    queue = CPU
    result_kind = ResultKind.CURVE
    inline = True
    request_field = "naps"

    def clean_request(self, value):
        if not (isinstance(value, dict) and isinstance(value.get("count"), int) and 0 < value["count"] <= 100):
            raise ValueError("naps is {count: 1..100, tag: text}.")
        return {"count": value["count"], "tag": str(value.get("tag", ""))}

    def plan(self, value, store_key, model, selection, seed):
        return [(f"Nap {value['tag']}{i}", {"i": i}, sha256_json({"nap": value["tag"], "i": i}))
                for i in range(value["count"])]

    def compute(self, step, job):
        time.sleep(NAP_SECONDS)
        job.progress(1, 1, "nap")
        relative = f"naps/{step.result_key}.json"
        publish_json(results_root() / relative, {"slept": NAP_SECONDS})
        return relative, {}


@contextlib.contextmanager
def embedded_broker(folder):
    """Point this process's Celery app at a file-system broker under ``folder``; the environment for a worker
    process that uses the same one (no REDIS_URL: the settings choose the embedded broker under its data dir)."""
    broker = folder / "broker"
    for part in ("messages", "control", "results"):
        (broker / part).mkdir(parents=True, exist_ok=True)
    saved = {name: app.conf[name] for name in ("broker_url", "broker_transport", "broker_transport_options")}
    app.conf.update(broker_url="filesystem://", broker_transport="neurox_site.broker:Transport",
                    broker_transport_options={"data_folder_in": str(broker / "messages"),
                                              "data_folder_out": str(broker / "messages"),
                                              "control_folder": str(broker / "control"), "polling_interval": 0.05})
    _new_connections()
    try:
        yield {"REDIS_URL": "", "NEUROX_DATA_DIR": str(folder)}
    finally:
        app.control.purge()
        app.conf.update(saved)
        _new_connections()


def _new_connections():
    """Drop the app's cached connection and producer pools, so the next message goes to the broker now set."""
    app._pool = None
    app.amqp._producer_pool = None


def real_workers(test):
    for mark in REAL_WORKER_MARKS:
        test = mark(test)
    return test


@real_workers
@pytest.mark.parametrize("broker", ["redis", "embedded"])
def test_one_new_step_of_b_starts_before_the_rest_of_as_thirty(people, attached, celery, tmp_path, broker):
    with (embedded_broker(tmp_path / "embedded") if broker == "embedded" else contextlib.nullcontext({})) as env:
        workers = [celery("worker", "-Q", queue, "--concurrency", "1", name=queue, NEUROX_STEP_MODULES=THIS_MODULE,
                          **env) for queue in ("gpu", "cpu")]
        a_run = services.create_run(people["owner"], people["project"],
                                    request_for(attached, naps={"count": 30, "tag": "a"}))
        a_naps = a_run.steps.filter(kind="nap")
        wait_for(lambda: a_naps.filter(state=StepState.SUCCEEDED).count() >= 2, 120, "A's first naps", workers)
        b_run = services.create_run(people["editor"], people["project"],
                                    request_for(attached, naps={"count": 1, "tag": "b"}))
        b_nap = b_run.steps.get(kind="nap")
        wait_for(lambda: run_state(b_run) in (RunState.SUCCEEDED, RunState.FAILED), 60, "B's run", workers)
        b_nap.refresh_from_db()
        assert b_nap.state == StepState.SUCCEEDED, b_nap.error
        # A's naps started while B's waited: the one A's worker may have been claiming as B's was queued
        overtaking = a_naps.filter(started_at__gt=b_nap.queued_at, started_at__lt=b_nap.started_at).count()
        assert overtaking <= 1, f"{overtaking} of A's steps started while B's one step waited"
        left = a_naps.filter(state=StepState.QUEUED).count()
        assert left >= 20, f"the test needs A's queue still long when B's step ran ({left} left)"
        services.cancel_run(people["owner"], a_run)
