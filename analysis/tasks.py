"""Celery tasks: thin. Each loads a step by id and hands it to ``analysis.computations``; each names its queue.

Model work (extraction: forward passes) runs on ``gpu``, array work (rankings with their confidence, statistics,
probe ablation) on ``cpu``. torch is imported only inside the engine calls, in the worker's pool process (CUDA
does not survive a fork). Clients read the Run and Step rows, never a task's return value.
"""

from celery import shared_task

from . import computations, services
from .models import StepKind


def _worker_name(task) -> str:
    return task.request.hostname or "eager"


@shared_task(bind=True, name="analysis.tasks.extract", queue="gpu")
def extract(self, step_id: int) -> str:
    return computations.execute(step_id, _worker_name(self))


@shared_task(bind=True, name="analysis.tasks.rank", queue="cpu")
def rank(self, step_id: int) -> str:
    return computations.execute(step_id, _worker_name(self))


@shared_task(bind=True, name="analysis.tasks.statistics", queue="cpu")
def statistics(self, step_id: int) -> str:
    return computations.execute(step_id, _worker_name(self))


@shared_task(bind=True, name="analysis.tasks.probe_ablation", queue="cpu")
def probe_ablation(self, step_id: int) -> str:
    return computations.execute(step_id, _worker_name(self))


@shared_task(name="analysis.tasks.reap", queue="cpu")
def reap() -> dict:
    return services.reap()


TASK_FOR_KIND = {StepKind.EXTRACT: extract, StepKind.RANKING: rank, StepKind.STATISTICS: statistics,
                 StepKind.PROBE_ABLATION: probe_ablation}
