"""Metering (issue #18 item 3): each attempt of a step adds the seconds it held its worker and where it computed
(also when it fails, and for an attempt the reaper takes back: up to its last heartbeat); a reused step costs 0;
``compute_seconds_used`` sums a user's runs finished this period. And the reaper's log retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analysis.models import LogLine, RunState, Step, StepKind, StepState
from analysis.runs import services
from analysis.runs.selectors import compute_seconds_used
from tests.support.runs import request_for

pytestmark = pytest.mark.django_db


def test_each_computed_step_records_its_seconds_and_device_and_a_reused_step_costs_nothing(
        people, attached, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    steps = list(run.steps.all())
    assert all(s.compute_seconds > 0 and s.device == "cpu" for s in steps), [
        (s.title, s.compute_seconds, s.device) for s in steps]
    # no more than the wall time the steps took (the meter starts after the claim and stops before the finish)
    assert all(s.compute_seconds <= (s.finished_at - s.started_at).total_seconds() + 0.05 for s in steps)
    assert compute_seconds_used(people["owner"]) == pytest.approx(sum(s.compute_seconds for s in steps))

    with django_capture_on_commit_callbacks(execute=True):
        again = services.create_run(people["editor"], people["project"], request_for(attached))
    assert all(s.reused and s.compute_seconds == 0 and s.device == "" for s in again.steps.all())
    assert compute_seconds_used(people["editor"]) == 0


def test_only_runs_finished_this_period_count(people, attached, django_capture_on_commit_callbacks, settings):
    settings.NEUROX_COMPUTE_PERIOD_DAYS = 7
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    used = compute_seconds_used(people["owner"])
    assert used > 0
    later = timezone.now() + timedelta(days=8)
    assert compute_seconds_used(people["owner"], now=later) == 0
    run.__class__.objects.filter(pk=run.pk).update(finished_at=later - timedelta(days=1))
    assert compute_seconds_used(people["owner"], now=later) == pytest.approx(used)


def test_a_failed_step_records_the_seconds_it_held_the_worker(people, attached, folders,
                                                              django_capture_on_commit_callbacks):
    corpus = attached["corpus"]
    stored = folders["media"] / corpus.storage_prefix / corpus.metadata["word_file"]
    stored.write_bytes(b"1\tThe\tthe\tDET\t_\t_\t0\troot\t_\t_\n2\tcat\n")  # the engine's reader refuses it
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    extract = run.steps.get(kind=StepKind.EXTRACT)
    assert extract.state == StepState.FAILED and extract.compute_seconds > 0 and extract.device == "cpu"
    run.refresh_from_db()
    assert compute_seconds_used(people["owner"]) == pytest.approx(extract.compute_seconds)


def _lost(step, attempts: int, now):
    """The step as a worker killed outright leaves it: running, claimed 100 s ago, last heartbeat 60 s ago."""
    Step.objects.filter(pk=step.pk).update(state=StepState.RUNNING, worker="doomed@node1", attempts=attempts,
                                           started_at=now - timedelta(seconds=100),
                                           heartbeat_at=now - timedelta(seconds=60), compute_seconds=7.0)


def test_the_reaper_charges_a_killed_attempt_up_to_its_last_heartbeat_once(
        queued_run, settings, django_capture_on_commit_callbacks):
    settings.NEUROX_STEP_STALE_SECONDS = 30
    now = timezone.now()
    extract = queued_run.steps.get(kind=StepKind.EXTRACT)
    _lost(extract, 1, now)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.reap(now)["requeued"] == [extract.pk]
    extract.refresh_from_db()
    assert extract.state == StepState.QUEUED and extract.compute_seconds == pytest.approx(7 + 40)
    # the killed attempt, if it ever came back, records nothing more: the reaper charged it
    assert services.record_compute(extract.pk, "doomed@node1", 1, 100.0, "cpu") is False
    with django_capture_on_commit_callbacks(execute=False):
        services.reap(now)
    extract.refresh_from_db()
    assert extract.compute_seconds == pytest.approx(47)


def test_the_reaper_charges_the_last_attempt_it_gives_up_on(queued_run, settings,
                                                            django_capture_on_commit_callbacks):
    settings.NEUROX_STEP_STALE_SECONDS = 30
    now = timezone.now()
    extract = queued_run.steps.get(kind=StepKind.EXTRACT)
    _lost(extract, settings.NEUROX_STEP_MAX_ATTEMPTS, now)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.reap(now)["failed"] == [extract.pk]
    extract.refresh_from_db()
    assert extract.state == StepState.FAILED and extract.compute_seconds == pytest.approx(47)


# ------------------------------------------------------------------------------------------------ log retention


def _age(run, days: float, now):
    LogLine.objects.filter(run=run).update(created_at=now - timedelta(days=days))


def test_the_reaper_removes_old_log_lines_of_finished_runs_only(people, attached, queued_run, settings,
                                                                django_capture_on_commit_callbacks):
    settings.NEUROX_LOG_RETENTION_DAYS = 90
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        finished = services.create_run(people["owner"], people["project"], request_for(attached, seed=3))
    finished.refresh_from_db()
    assert finished.state == RunState.SUCCEEDED
    _age(finished, 91, now)
    _age(queued_run, 200, now)  # a run still going keeps its whole log, however old
    services.write_log(finished.pk, ["A recent line."])
    lines_before = finished.log_seq
    with django_capture_on_commit_callbacks(execute=False):
        report = services.reap(now)
    assert report["log_lines_removed"] == lines_before
    assert list(LogLine.objects.filter(run=finished).values_list("text", flat=True)) == ["A recent line."]
    assert LogLine.objects.filter(run=queued_run).exists()
    finished.refresh_from_db()
    assert finished.log_seq == lines_before + 1  # numbering goes on


def test_a_retention_of_zero_keeps_every_line(people, attached, settings, django_capture_on_commit_callbacks):
    settings.NEUROX_LOG_RETENTION_DAYS = 0
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        finished = services.create_run(people["owner"], people["project"], request_for(attached))
    _age(finished, 10_000, now)
    count = LogLine.objects.filter(run=finished).count()
    with django_capture_on_commit_callbacks(execute=False):
        assert services.reap(now)["log_lines_removed"] == 0
    assert LogLine.objects.filter(run=finished).count() == count


class FakeCuda:
    """torch.cuda as the meter asks it: initialized or not, memory held now and at the peak since a reset."""

    def __init__(self, initialized=False, allocated=0):
        self.initialized, self.allocated, self.peak = initialized, allocated, allocated

    def is_initialized(self):
        return self.initialized

    def is_available(self):
        return True

    def memory_allocated(self):
        return self.allocated

    def reset_peak_memory_stats(self):
        self.peak = self.allocated

    def max_memory_allocated(self):
        return self.peak


@pytest.mark.parametrize("before, during, expected", [
    (None, None, "cpu"),  # CUDA never used in this process
    (None, 4096, "cuda"),  # this step was the first to use CUDA
    (1024, 8192, "cuda"),  # an earlier step used CUDA; this one allocated more on it
    (1024, None, "cpu"),  # an earlier step used CUDA; this one did not touch it
])
def test_the_device_is_cuda_only_when_the_step_itself_used_cuda(queued_run, monkeypatch, before, during, expected):
    import sys
    from types import SimpleNamespace

    from analysis.runs import runner

    cuda = FakeCuda(initialized=before is not None, allocated=before or 0)
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    extract = queued_run.steps.get(kind=StepKind.EXTRACT)
    Step.objects.filter(pk=extract.pk).update(state=StepState.RUNNING, worker="gpu@node", attempts=1)
    extract.refresh_from_db()
    meter = runner.Meter(extract, "gpu@node")
    assert Step.objects.get(pk=extract.pk).device == "cuda"  # while it runs: a gpu-queue step, CUDA available
    if during is not None:
        cuda.initialized, cuda.peak = True, max(cuda.peak, during)
    meter.record()
    assert Step.objects.get(pk=extract.pk).device == expected
