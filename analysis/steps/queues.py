"""Sending a step to the workers of its type's queue, and asking the broker how many messages a queue holds.

Every kind goes through the one task ``analysis.tasks.run_step``, sent to the queue its step type names; the
services send by task name through the Celery app, so they never import the tasks module (tasks → runner →
services already)."""

from __future__ import annotations

from analysis.steps.registry import step_type

RUN_STEP_TASK = "analysis.tasks.run_step"


def send_step(kind: str, step_id: int, task_id: str) -> None:
    """Send the step's message (eager in tests: the registered task runs in-process)."""
    from celery import current_app as app  # the project's app (neurox_site/__init__ loads it)

    app.tasks[RUN_STEP_TASK].apply_async(args=[step_id], task_id=task_id, queue=step_type(kind).queue)


def messages_waiting(queue: str) -> int | None:
    """How many messages the broker holds for ``queue`` (not yet taken by a worker); None when unknown."""
    from celery import current_app as app  # the project's app (neurox_site/__init__ loads it)

    try:
        with app.connection_for_read() as connection:
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
    except Exception:  # a queue never declared, or the broker is down: unknown, so resend as before
        return None
