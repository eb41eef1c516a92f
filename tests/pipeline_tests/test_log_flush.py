"""A worker's log line reaches the database within about a second even when the step then goes quiet (a long
model load, a probe training with no per-chunk lines): the step's heartbeat thread flushes the log buffer on a
timer. On the test database with a real second connection (that thread's), so ``transaction=True``."""

from __future__ import annotations

import time

import pytest

from analysis.runs import runner
from analysis.steps import step_type
from analysis.models import LogLine, Run, RunState, Step, StepKind, StepState

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_LINE = "loading the model (this takes a while)"


def a_queued_step(people) -> Step:
    run = Run.objects.create(project=people["project"], created_by=people["owner"], request={}, admitted=True)
    return Step.objects.create(run=run, kind=StepKind.EXTRACT, title="Extract activations: quiet", queue="gpu",
                               result_key="f" * 64, state=StepState.QUEUED)


def test_a_line_logged_before_a_quiet_computation_is_written_within_a_second(people, folders, settings,
                                                                             monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # as in a worker: the heartbeat thread runs
    settings.NEUROX_STEP_HEARTBEAT_SECONDS = 30  # the heartbeat itself is far off; the log must not wait for it
    step = a_queued_step(people)
    seen_after = {}

    def quiet_compute(step, job):
        job.log("corpus: 1 sentence")  # both arrive within the batch window, so they wait in the buffer
        job.log(QUIET_LINE)
        started = time.monotonic()
        while time.monotonic() - started < 4:  # the long quiet part: no more lines
            if LogLine.objects.filter(run_id=step.run_id, text=QUIET_LINE).exists():
                seen_after["seconds"] = time.monotonic() - started
                break
            time.sleep(0.05)
        (folders["results"] / "quiet.json").parent.mkdir(parents=True, exist_ok=True)
        (folders["results"] / "quiet.json").write_text("{}")
        return "quiet.json", {}

    monkeypatch.setattr(step_type(StepKind.EXTRACT), "compute", quiet_compute)
    assert runner.execute(step.pk, "solo@test") == "succeeded"
    # due after 0.5 s, written at the next 0.5 s tick; 1.5 s leaves room for a busy 2-core machine
    assert seen_after.get("seconds", 99) < 1.5, "the line waited for the step's end"
    run = Run.objects.get(pk=step.run_id)
    assert run.state == RunState.SUCCEEDED
    texts = list(run.log_lines.values_list("text", flat=True))
    assert texts[:2] == ["corpus: 1 sentence", QUIET_LINE] and texts.count(QUIET_LINE) == 1
    seqs = list(run.log_lines.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_flush_if_due_writes_a_batch_only_once_it_has_waited_its_time(people, django_assert_num_queries):
    from analysis.runs.services import LogBuffer

    run = Run.objects.create(project=people["project"], created_by=people["owner"], request={})
    buffer = LogBuffer(run.pk, None, every=0.2)
    buffer.add("a line")
    with django_assert_num_queries(0):
        buffer.flush_if_due()  # not due yet: the batch may still grow
    time.sleep(0.25)
    buffer.flush_if_due()
    assert list(run.log_lines.values_list("seq", "text")) == [(1, "a line")]
    time.sleep(0.25)
    with django_assert_num_queries(0):
        buffer.flush_if_due()  # nothing waiting: nothing written
