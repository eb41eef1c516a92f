"""The one contract between a long engine call and whoever runs it (the CLI, a Celery task, a notebook).

Every long call takes ``job: Job | None = None`` and, at each chunk boundary (a batch of words, an epoch, a
resample, a curve point), reports ``job.progress(done, total, unit)``, may ``job.log(text)``, and calls
``job.check_cancelled()``, which raises :class:`Cancelled` once the caller's ``should_stop()`` answers true.
A cancelled call leaves nothing behind that a later call would trust as finished.

The engine never imports the caller's machinery: the pipeline passes plain callables that write to its Run rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class Cancelled(Exception):
    """The caller asked the work to stop; it stopped at a chunk boundary and kept nothing half-done."""


ProgressFn = Callable[[int, int, str], None]
LogFn = Callable[[str], None]
StopFn = Callable[[], bool]


@dataclass(frozen=True)
class Job:
    """Callbacks for one long call; each is optional, so ``Job()`` is a silent job that is never cancelled."""

    on_progress: ProgressFn | None = None
    on_log: LogFn | None = None
    should_stop: StopFn | None = None

    def progress(self, done: int, total: int, unit: str) -> None:
        if self.on_progress is not None:
            self.on_progress(int(done), int(total), unit)

    def log(self, text: str) -> None:
        if self.on_log is not None:
            self.on_log(text)

    def check_cancelled(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("cancelled by the caller")

    def without_progress(self) -> Job:
        """The same log and cancellation for nested work whose own progress the outer call reports instead."""
        return Job(on_log=self.on_log, should_stop=self.should_stop)

    def part(self, done_before: int, total: int, unit: str | None = None) -> Job:
        """The same log and cancellation for nested work that is one part of a larger count: the nested call's
        ``progress(done, _, its_unit)`` is reported as ``done_before + done`` of ``total`` (e.g. one probe fit's
        epochs among the epochs of every fit), in ``unit`` when given (parts that count different things)."""
        if self.on_progress is None:
            return self

        def report(done: int, _part_total: int, its_unit: str) -> None:
            self.progress(done_before + done, total, unit or its_unit)

        return Job(on_progress=report, on_log=self.on_log, should_stop=self.should_stop)


SILENT = Job()


def as_job(job: Job | None) -> Job:
    return SILENT if job is None else job
