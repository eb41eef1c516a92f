"""Celery tasks: thin. One task runs every kind of step (``analysis.runs.runner``), sent to its type's queue.

Model work (extraction, model-level ablation: forward passes) runs on ``gpu``, array work (rankings with their
confidence, statistics, probe ablation, cross-model rankings) on ``cpu``, the realtime path (a typed sentence,
manipulation) on ``realtime``: those two return their answer through the result backend (``ignore_result=False``)
to the HTTP request that waits for it.
torch is imported only in the worker's pool processes, after the fork (CUDA does not survive a fork). Clients
read the Run and Step rows, never a task's return value.
"""

from celery import shared_task
from celery.signals import worker_process_init

from analysis.runs import realtime, runner, services
from analysis.steps.queues import RUN_STEP_TASK


@worker_process_init.connect
def preload_engine_libraries(**_) -> None:
    """Import torch and transformers' model classes when a pool process starts (after the fork, so CUDA is still
    safe), so a fresh worker's first step or realtime answer does not pay ~7 s of imports on 2 cores. In the
    process's own thread: a background import raced the first step's (transformers' lazy module half-loaded).
    Celery gives a new pool process CELERY_WORKER_PROC_ALIVE_TIMEOUT to start; settings allow for this."""
    import torch  # noqa: F401
    import transformers

    transformers.AutoModel  # noqa: B018  the lazy module loads its model classes on first access


@shared_task(bind=True, name=RUN_STEP_TASK)
def run_step(self, step_id: int) -> str:
    """Every kind of step; it is sent to the queue its step type names (``analysis.steps.queues``)."""
    return runner.execute(step_id, self.request.hostname or "eager")


# acks_late off: an answer nobody waits for any more is not worth redelivering.
@shared_task(name=realtime.ACTIVATIONS_TASK, queue="realtime", ignore_result=False, acks_late=False)
def realtime_activations(arguments: dict) -> dict:
    return realtime.answer_or_error(realtime.compute_activations, arguments)


@shared_task(name=realtime.MANIPULATE_TASK, queue="realtime", ignore_result=False, acks_late=False)
def realtime_manipulate(arguments: dict) -> dict:
    return realtime.answer_or_error(realtime.compute_manipulation, arguments)


@shared_task(name="analysis.tasks.reap", queue="cpu")
def reap() -> dict:
    return services.reap()

