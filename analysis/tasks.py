"""Celery tasks: thin. Each loads a step by id and hands it to ``analysis.computations``; each names its queue.

Model work (extraction: forward passes) runs on ``gpu``, array work (rankings with their confidence, statistics,
probe ablation) on ``cpu``. torch is imported only inside the engine calls, in the worker's pool process (CUDA
does not survive a fork). Clients read the Run and Step rows, never a task's return value.
"""

from celery import shared_task

from . import computations, services
from .models import StepKind
from .step_tasks import TASK_FOR_KIND


def _step_task(kind: str):
    name, queue = TASK_FOR_KIND[kind]
    return shared_task(bind=True, name=name, queue=queue)


def _worker_name(task) -> str:
    return task.request.hostname or "eager"


@_step_task(StepKind.EXTRACT)
def extract(self, step_id: int) -> str:
    return computations.execute(step_id, _worker_name(self))


@_step_task(StepKind.RANKING)
def rank(self, step_id: int) -> str:
    return computations.execute(step_id, _worker_name(self))


@_step_task(StepKind.STATISTICS)
def statistics(self, step_id: int) -> str:
    return computations.execute(step_id, _worker_name(self))


@_step_task(StepKind.PROBE_ABLATION)
def probe_ablation(self, step_id: int) -> str:
    return computations.execute(step_id, _worker_name(self))


@shared_task(name="analysis.tasks.reap", queue="cpu")
def reap() -> dict:
    return services.reap()

