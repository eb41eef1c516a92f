"""Reads of runs, always scoped to a user through the projects' one permission path."""

from __future__ import annotations

from django.db.models import Case, Count, IntegerField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from projects.selectors import projects_visible_to

from analysis.models import FINISHED_RUN_STATES, LogLine, Run, RunState, Step, StepState

SNAPSHOT_LINES = 200  # log lines a run page opens with; older ones are in the API (…/logs/?after=)


def runs_visible_to(user):
    """Runs of the projects ``user`` is a member of (any role)."""
    return Run.objects.filter(project__in=projects_visible_to(user)).select_related("project", "created_by")


def run_for(user, pk) -> Run:
    """The run ``pk`` as ``user`` may see it, else ``Http404``."""
    try:
        return runs_visible_to(user).get(pk=pk)
    except (Run.DoesNotExist, ValueError, TypeError):
        raise Http404("No such run.")


def _steps_ahead_in_queue():
    """For each outer step: queued steps of every user on the same queue sent before it (oldest first)."""
    ahead = Step.objects.filter(state=StepState.QUEUED, queue=OuterRef("queue")).filter(
        Q(queued_at__lt=OuterRef("queued_at")) | Q(queued_at=OuterRef("queued_at"), id__lt=OuterRef("id")))
    return Subquery(ahead.order_by().values("queue").annotate(n=Count("id")).values("n")[:1],
                    output_field=IntegerField())


def steps_of(run: Run):
    """The run's steps in order, each with ``queue_position``: 1 for the next one a worker of its queue takes,
    N when N-1 queued steps (of any user) are ahead of it; None unless the step is queued."""
    position = Case(When(state=StepState.QUEUED, then=Coalesce(_steps_ahead_in_queue(), Value(0)) + 1),
                    default=None, output_field=IntegerField())
    return run.steps.prefetch_related("needs").annotate(queue_position=position).order_by("id")


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def steps_with_time_left(run: Run, now=None) -> list:
    """The run's steps (``steps_of``), each with ``time_left``: for a running step that has counted some of its
    units, the rest at the rate it has gone since it started ("about 3 min left"), else ""."""
    now = now or timezone.now()
    steps = list(steps_of(run))
    for step in steps:
        step.time_left = ""
        if step.state == StepState.RUNNING and step.started_at and 0 < step.done < step.total:
            elapsed = (now - step.started_at).total_seconds()
            if elapsed > 0:
                step.time_left = f"about {_duration_text((step.total - step.done) * elapsed / step.done)} left"
    return steps


def active_runs_of(user_id: int) -> int:
    """How many of the user's concurrent-run slots are held (admitted runs not finished)."""
    return Run.objects.filter(created_by_id=user_id, admitted=True).exclude(state__in=FINISHED_RUN_STATES).count()


def waiting_reason(run: Run) -> str:
    """Why a queued run has not started: its creator's quota is full; empty when it is not waiting on it."""
    if run.admitted or run.state != RunState.QUEUED:
        return ""
    limit, active = run.created_by.effective_run_limit, active_runs_of(run.created_by_id)
    if active < limit:  # a slot is free: the run is admitted as soon as it is dispatched
        return ""
    return (f"Waiting: {active} of your runs are active and your limit is {limit} at once; this one starts when "
            "one of them finishes.")


def log_lines_after(run: Run, after: int = 0, limit: int = 1000):
    """The run's log lines numbered above ``after``, in order (a client catching up)."""
    return LogLine.objects.filter(run=run, seq__gt=after).order_by("seq")[:limit]


def last_log_lines(run: Run, count: int = SNAPSHOT_LINES):
    """The run's last ``count`` log lines, in order (what a run page opens with)."""
    return log_lines_after(run, max(run.log_seq - count, 0), count)
