"""Which Celery task runs each kind of step, and on which queue: a registry with no imports back.

``analysis.tasks`` registers its tasks under these names and queues; ``analysis.services`` sends a step by
name through the Celery app, so services never imports tasks (tasks → computations → services already)."""

from __future__ import annotations

from .models import StepKind

GPU, CPU = "gpu", "cpu"

# kind → (registered task name, queue). Model work (forward passes) on gpu, array work on cpu.
TASK_FOR_KIND: dict[str, tuple[str, str]] = {
    StepKind.EXTRACT: ("analysis.tasks.extract", GPU),
    StepKind.RANKING: ("analysis.tasks.rank", CPU),
    StepKind.STATISTICS: ("analysis.tasks.statistics", CPU),
    StepKind.PROBE_ABLATION: ("analysis.tasks.probe_ablation", CPU),
    StepKind.CROSSMODEL: ("analysis.tasks.crossmodel", CPU),
    StepKind.MODEL_ABLATION: ("analysis.tasks.model_ablation", GPU),
}


def queue_for(kind: str) -> str:
    return TASK_FOR_KIND[kind][1]


def send_step(kind: str, step_id: int, task_id: str) -> None:
    """Send the step's message (eager in tests: the registered task runs in-process)."""
    from neurox_site.celery import app

    name, queue = TASK_FOR_KIND[kind]
    app.tasks[name].apply_async(args=[step_id], task_id=task_id, queue=queue)


def messages_waiting(queue: str) -> int | None:
    """How many messages the broker holds for ``queue`` (not yet taken by a worker); None when unknown."""
    from neurox_site.celery import app

    try:
        with app.connection_for_read() as connection:
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
    except Exception:  # a queue never declared, or the broker is down: unknown, so resend as before
        return None
