"""What the tests with real Celery worker processes share (the ``celery`` fixture starts them): their marks,
waiting for a condition with the workers' logs on timeout, and a corpus big enough to watch an extraction."""

from __future__ import annotations

import os
import time

import pytest

from analysis.models import Run

# Skipped only when ``REDIS_URL`` is unset and ``CI`` is not true; under ``CI=true`` they always run.
REAL_WORKER_MARKS = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL") and os.environ.get("CI", "").lower() != "true",
                       reason="real-worker tests need Redis: set REDIS_URL (e.g. redis://127.0.0.1:6379/7)"),
]

BIG_CORPUS = 3000  # sentences (21,000 words): extraction in 32-word chunks lasts a few seconds on a tiny BERT


def wait_for(predicate, timeout: float, what: str, workers=()):
    """``predicate()``'s first true value; a test failure with the ``workers``' logs after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    logs = "\n\n".join(f"--- {w.log_path.name}\n{w.log()}" for w in workers)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{logs}")


def run_state(run: Run) -> str:
    """The run's state as the database has it now."""
    return Run.objects.values_list("state", flat=True).get(pk=run.pk)
