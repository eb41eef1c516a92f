"""Metering with real worker processes (issue #18 item 3): every computed step records the seconds it held its
worker, and where (cpu here: no CUDA on the test machines), within the wall time of its attempt; a reused step
records nothing; the user's compute this period is their sum."""

from __future__ import annotations

import pytest

from analysis.models import RunState
from analysis.runs import services
from analysis.runs.selectors import compute_seconds_used
from tests.support.real_workers import REAL_WORKER_MARKS, run_state, wait_for
from tests.support.runs import request_for

pytestmark = REAL_WORKER_MARKS


def test_real_workers_record_each_steps_compute_seconds_and_device(people, attached, celery):
    gpu = celery("worker", "-Q", "gpu", "--concurrency", "1", name="gpu")
    cpu = celery("worker", "-Q", "cpu", "--concurrency", "1", name="cpu")
    run = services.create_run(people["owner"], people["project"], request_for(attached))
    wait_for(lambda: run_state(run) in (RunState.SUCCEEDED, RunState.FAILED), 60, "the run to finish", [gpu, cpu])
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    steps = list(run.steps.all())
    for step in steps:
        wall = (step.finished_at - step.started_at).total_seconds()
        assert 0 < step.compute_seconds <= wall + 0.05, (step.title, step.compute_seconds, wall)
        assert step.device == "cpu", (step.title, step.device)
    assert compute_seconds_used(people["owner"]) == pytest.approx(sum(s.compute_seconds for s in steps))

    again = services.create_run(people["editor"], people["project"], request_for(attached))
    wait_for(lambda: run_state(again) == RunState.SUCCEEDED, 5, "the second run to reuse everything")
    assert all(s.reused and s.compute_seconds == 0 for s in again.steps.all())
    assert compute_seconds_used(people["editor"]) == 0
