"""What a worker does with a step, whatever its kind: claim it, call its type's ``compute`` (``analysis.steps``)
with a Job wired to the Step row, and finish, fail or stop it through ``analysis.runs.services``, with one message a
person can act on when it fails. Nothing here holds a transaction while computing.

The Job adapter writes progress to the Step row at most every ``PROGRESS_EVERY`` seconds (and at the end),
batches log lines, and checks the run's state for cancellation at most every ``STOP_CHECK_EVERY`` seconds. A
thread heartbeats while the step runs, so a long model load is not mistaken for a dead worker, and writes log
lines left waiting in the batch.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time

from django.conf import settings
from django.db import connection

from analysis.runs import services
from analysis.engine.formats import CorpusError
from analysis.engine.jobs import Cancelled, Job
from analysis.engine.loading import ModelLoadError, UnsupportedArchitecture
from analysis.engine.modeldir import ModelDirError
from analysis.engine.store import StoreError
from analysis.models import Step, results_root
from analysis.runs.realtime import configure_torch_threads
from analysis.steps import step_type
from analysis.steps import object_store
from analysis.steps.registry import GPU
from analysis.steps.storage import tree_bytes
from analysis.steps.versions import library_versions

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.5
STOP_CHECK_EVERY = 0.25


class StepJob:
    """The engine's Job for one step: progress, log and cancellation go to the database, throttled."""

    def __init__(self, step: Step):
        self.step_id = step.pk
        self.logs = services.LogBuffer(step.run_id, step.pk)
        self.last_progress = 0.0
        self.last_stop_check = 0.0
        self.stopping = False
        self.pending_progress = None

    def progress(self, done: int, total: int, unit: str) -> None:
        self.pending_progress = (done, total, unit)
        now = time.monotonic()
        if now - self.last_progress >= PROGRESS_EVERY or done >= total:
            self.last_progress = now
            self.pending_progress = None
            services.heartbeat(self.step_id, done, total, unit)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self.stopping and now - self.last_stop_check >= STOP_CHECK_EVERY:
            self.last_stop_check = now
            self.stopping = services.should_stop(self.step_id)
        return self.stopping

    def job(self) -> Job:
        return Job(on_progress=self.progress, on_log=self.logs.add, should_stop=self.should_stop)

    def close(self) -> None:
        if self.pending_progress is not None:
            services.heartbeat(self.step_id, *self.pending_progress)
        self.logs.flush()


class Heartbeat:
    """From a thread while the step runs: heartbeats the step every ``every`` seconds and writes the log lines
    that ``logs`` holds once they are due, so a line logged before a long quiet computation reaches the page
    within about ``logs.every`` seconds instead of at the next line or the step's end."""

    def __init__(self, step_id: int, every: float, logs: services.LogBuffer | None = None):
        self.step_id, self.every, self.logs = step_id, every, logs
        self.tick = min(every, logs.every) if logs is not None else every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-step-{step_id}")

    def _beat(self) -> None:
        last_beat = time.monotonic()
        try:
            while not self.stopped.wait(self.tick):
                if self.logs is not None:
                    self.logs.flush_if_due()
                if time.monotonic() - last_beat >= self.every:
                    last_beat = time.monotonic()
                    services.heartbeat(self.step_id)
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(timeout=10)


# ------------------------------------------------------------------------------------------------ errors


# Errors whose text is written for the person who started the run: the engine's typed errors, and the ValueError /
# RuntimeError raised here (e.g. a corpus whose stored files changed). Other engine errors are ValueErrors too.
MESSAGE_ERRORS = (CorpusError, ModelDirError, ModelLoadError, UnsupportedArchitecture, StoreError, ValueError,
                  RuntimeError)


def explain(step: Step, error: BaseException) -> str:
    """One paragraph a person can act on; the traceback goes to the worker's log only."""
    from celery.exceptions import SoftTimeLimitExceeded

    name = type(error).__name__
    torch = sys.modules.get("torch")  # loaded by the step if it used a model; not imported just to check
    if isinstance(error, MemoryError) or (torch is not None and isinstance(error, torch.cuda.OutOfMemoryError)):
        return (f"{step.title} ran out of memory. Choose fewer neuron sets or layers, a smaller corpus, or run it "
                "on a worker with more memory.")
    if isinstance(error, SoftTimeLimitExceeded):
        return (f"{step.title} took longer than the time limit ({settings.CELERY_TASK_SOFT_TIME_LIMIT} s). Choose "
                "a smaller corpus or fewer resamples.")
    if isinstance(error, MESSAGE_ERRORS):
        text = str(error)
        return f"{text[:1].upper()}{text[1:]}".rstrip(".") + "."
    return (f"Unexpected error ({name}: {str(error)[:300]}). The full traceback is in the worker's log; "
            "retry the run, and report it if it happens again.")


# ------------------------------------------------------------------------------------------------ metering


def _cuda_allocated() -> int | None:
    """Bytes of CUDA memory this process holds now, or None while it has not used CUDA at all. torch is not
    imported here just to ask (every worker pool process imports it anyway, so being loaded says nothing)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return torch.cuda.memory_allocated()


class Meter:
    """What one attempt of a step costs: the seconds it held the worker (claim to finish, failure or stop) and
    the device it computed on — ``cuda`` when the step put anything on a CUDA device (CUDA was first used by this
    step, or its peak allocation rose above what the process held before), else ``cpu`` (array steps, a model
    on the CPU). Recorded once, by ``services.record_compute``, only while the attempt still holds the step:
    an attempt the reaper took back was charged by the reaper up to its last heartbeat."""

    def __init__(self, step: Step, worker: str):
        self.step_id, self.worker, self.attempt = step.pk, worker, step.attempts
        self.started = time.monotonic()
        self.cuda_before = _cuda_allocated()
        if self.cuda_before is not None:
            sys.modules["torch"].cuda.reset_peak_memory_stats()
        self.recorded = False
        # what the operator's page shows while it runs; the end corrects it to where it really computed
        self._write(0.0, self.expected_device(step))

    @staticmethod
    def expected_device(step: Step) -> str:
        torch = sys.modules.get("torch")
        loads_a_model = step_type(step.kind).queue == GPU  # model work: extraction, model-level ablation
        return "cuda" if loads_a_model and torch is not None and torch.cuda.is_available() else "cpu"

    def device(self) -> str:
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_initialized():
            return "cpu"
        if self.cuda_before is None:
            return "cuda"  # this step was the first to use CUDA in the process
        return "cuda" if torch.cuda.max_memory_allocated() > self.cuda_before else "cpu"

    def record(self) -> None:
        if self.recorded:
            return
        self.recorded = True
        self._write(time.monotonic() - self.started, self.device())

    def _write(self, seconds: float, device: str) -> None:
        try:
            services.record_compute(self.step_id, self.worker, self.attempt, seconds, device)
        except Exception:  # noqa: BLE001 — metering must not turn a finished step into a failed one
            log.exception("could not record the compute-seconds of step %s", self.step_id)


# ------------------------------------------------------------------------------------------------ the whole step


def execute(step_id: int, worker: str) -> str:
    """Claim the step, compute it, and finish, fail or stop it. Returns what happened (for the worker log)."""
    step = services.claim_step(step_id, worker)
    if step is None:
        return "skipped"
    configure_torch_threads(step.queue)
    meter = Meter(step, worker)
    adapter = StepJob(step)
    # Eager execution (unit tests only) runs inside the caller's transaction, which another connection cannot see.
    beating = contextlib.nullcontext() if settings.CELERY_TASK_ALWAYS_EAGER else \
        Heartbeat(step.pk, settings.NEUROX_STEP_HEARTBEAT_SECONDS, adapter.logs)
    try:
        with beating:
            relative, meta = step_type(step.kind).compute(step, adapter.job())
        adapter.close()
        # the one place a result records what computed it (shown by analysis.steps.provenance)
        meta = {**meta, "versions": library_versions()}
        object_store.publish(relative)  # with NEUROX_RESULTS_IN_S3: other nodes fetch it from there
        meter.record()
        services.finish_step(step, relative, tree_bytes(results_root() / relative), meta)
        return "succeeded"
    except Cancelled:
        adapter.close()
        meter.record()
        services.step_stopped(step)
        return "cancelled"
    except Exception as error:  # noqa: BLE001 — every failure becomes the step's reason
        log.exception("step %s (%s) failed", step.pk, step.title)
        adapter.close()
        meter.record()
        services.fail_step(step, explain(step, error))
        return "failed"
