"""Celery tasks: thin. Each loads a step by id and hands it to ``analysis.computations``; each names its queue.

Model work (extraction: forward passes) runs on ``gpu``, array work (rankings with their confidence, statistics,
probe ablation) on ``cpu``, the realtime path (a typed sentence, manipulation) on ``realtime``: those two
return their answer through the result backend (``ignore_result=False``) to the HTTP request that waits for it.
torch is imported only in the worker's pool processes, after the fork (CUDA does not survive a fork). Clients read the Run and Step rows, never a task's return value.
"""

import threading

from celery import shared_task
from celery.signals import worker_process_init

from . import computations, realtime, services
from .models import StepKind
from .step_tasks import TASK_FOR_KIND


def _step_task(kind: str):
    name, queue = TASK_FOR_KIND[kind]
    return shared_task(bind=True, name=name, queue=queue)


_preloading: threading.Thread | None = None


@worker_process_init.connect
def preload_engine_libraries(**_) -> threading.Thread:
    """Import torch and transformers in a new pool process (after the fork, so CUDA is still safe) from a thread,
    so a fresh worker's first step does not pay ~7 s of imports on 2 cores (a step that starts meanwhile waits
    on the import lock). A thread, because pool-process start-up must answer within a few seconds."""

    def load():
        import torch  # noqa: F401
        import transformers  # noqa: F401

    global _preloading
    thread = threading.Thread(target=load, daemon=True, name="preload-engine-libraries")
    thread.start()
    _preloading = thread
    return thread


def _wait_for_preload() -> None:
    """A task that starts while the preload runs waits for it: using transformers while another thread is
    still importing it fails (measured: "module 'transformers' has no attribute 'AutoModelForMaskedLM'")."""
    if _preloading is not None:
        _preloading.join()


def _worker_name(task) -> str:
    return task.request.hostname or "eager"


def _execute(task, step_id: int) -> str:
    _wait_for_preload()
    realtime.configure_torch_threads(task.queue)
    return computations.execute(step_id, _worker_name(task))


@_step_task(StepKind.EXTRACT)
def extract(self, step_id: int) -> str:
    return _execute(self, step_id)


@_step_task(StepKind.RANKING)
def rank(self, step_id: int) -> str:
    return _execute(self, step_id)


@_step_task(StepKind.STATISTICS)
def statistics(self, step_id: int) -> str:
    return _execute(self, step_id)


@_step_task(StepKind.PROBE_ABLATION)
def probe_ablation(self, step_id: int) -> str:
    return _execute(self, step_id)


# acks_late off: an answer nobody waits for any more is not worth redelivering.
@shared_task(name="analysis.tasks.realtime_activations", queue="realtime", ignore_result=False, acks_late=False)
def realtime_activations(arguments: dict) -> dict:
    _wait_for_preload()
    return realtime.answer_or_error(realtime.compute_activations, arguments)


@shared_task(name="analysis.tasks.realtime_manipulate", queue="realtime", ignore_result=False, acks_late=False)
def realtime_manipulate(arguments: dict) -> dict:
    _wait_for_preload()
    return realtime.answer_or_error(realtime.compute_manipulation, arguments)


@shared_task(name="analysis.tasks.reap", queue="cpu")
def reap() -> dict:
    return services.reap()

