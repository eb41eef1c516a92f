"""Reads of runs, always scoped to a user through the projects' one permission path."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Sum
from django.http import Http404
from django.utils import timezone

from accounts.quotas import human_duration
from projects.selectors import projects_visible_to

from analysis.models import (
    FINISHED_RUN_STATES, FINISHED_STEP_STATES, LogLine, Result, ResultState, Run, RunState, Step, StepState,
)
from analysis.runs import fair_share

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


def steps_of(run: Run) -> list[Step]:
    """The run's steps in order, each with ``queue_position``: 1 for the next one a worker of its queue takes,
    N when N-1 queued steps (of any user) are really ahead of it in the fair order (``fair_share``); None
    unless the step is queued."""
    steps = list(run.steps.prefetch_related("needs").order_by("id"))
    positions = {}
    for queue in {step.queue for step in steps if step.state == StepState.QUEUED}:
        positions.update(fair_share.queue_positions(queue))
    for step in steps:
        step.queue_position = positions.get(step.pk) if step.state == StepState.QUEUED else None
    return steps


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
                step.time_left = f"about {human_duration((step.total - step.done) * elapsed / step.done)} left"
    return steps


def active_runs_of(user_id: int) -> int:
    """How many of the user's concurrent-run slots are held (admitted runs not finished)."""
    return Run.objects.filter(created_by_id=user_id, admitted=True).exclude(state__in=FINISHED_RUN_STATES).count()


def waiting_runs_of(user_id: int) -> int:
    """How many of the user's runs wait for a concurrent-run slot (queued, not admitted)."""
    return Run.objects.filter(created_by_id=user_id, admitted=False, state=RunState.QUEUED).count()


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


# ------------------------------------------------------------------------------------------------ metering


def result_keys_of(user):
    """The result keys every step of every run ``user`` created refers to (reused steps included)."""
    return Step.objects.filter(run__created_by=user).values("result_key")


def results_bytes_of(user) -> int:
    """Bytes of results counted towards ``user``'s storage quota (registered as the "results" storage counter,
    beside the projects' "uploads"). The rule: the full size of every distinct ready result that a step of a run
    they created refers to. A result shared by content counts in full for each user whose runs use it (nobody
    can free space by pointing at another's result, and nobody loses quota when another deletes theirs); the
    same result in two of one's own runs counts once; deleting one's runs (or the project holding them) frees it
    for that user, and the bytes on disk once no run refers to them (``reclaim_unreferenced_results``)."""
    return Result.objects.filter(state=ResultState.READY, key__in=result_keys_of(user)).aggregate(
        total=Sum("bytes"))["total"] or 0


def results_bytes_new_to(user, keys) -> int:
    """Bytes of the ready results among ``keys`` that ``user``'s runs do not refer to yet: what reusing them in a
    new run adds to the user's storage."""
    return Result.objects.filter(state=ResultState.READY, key__in=list(keys)).exclude(
        key__in=result_keys_of(user)).aggregate(total=Sum("bytes"))["total"] or 0


def compute_period_start(now=None):
    """The start of the compute period that ends ``now`` (``NEUROX_COMPUTE_PERIOD_DAYS`` back, a sliding window)."""
    return (now or timezone.now()) - timedelta(days=settings.NEUROX_COMPUTE_PERIOD_DAYS)


def compute_seconds_used(user, now=None) -> float:
    """Compute-seconds ``user`` used this period: ``Step.compute_seconds`` over the steps of their runs that
    finished in the last ``NEUROX_COMPUTE_PERIOD_DAYS`` (the one sum: account page, admin, compute quota)."""
    return Step.objects.filter(run__created_by=user, run__finished_at__gte=compute_period_start(now)).aggregate(
        total=Sum("compute_seconds"))["total"] or 0.0


# ------------------------------------------------------------------------------------------------ compute quota


def compute_seconds_committed(user, now=None) -> float:
    """What ``user``'s compute quota counts now: ``compute_seconds_used`` (runs finished this period) plus their
    runs not finished yet — each finished step's recorded compute-seconds, and each step still to finish at the
    larger of its estimated cost (``Step.estimated_seconds``, set by ``create_run``) and what it has used so far.
    So runs queued behind the concurrent-run limit count from the moment they are created: one cannot queue a
    hundred runs, each under the limit, before the first is charged."""
    from django.db.models import Case, F, FloatField, When
    from django.db.models.functions import Greatest

    open_steps = Step.objects.filter(run__created_by=user).exclude(run__state__in=FINISHED_RUN_STATES)
    charge = Case(When(state__in=FINISHED_STEP_STATES, then=F("compute_seconds")),
                  default=Greatest(F("compute_seconds"), F("estimated_seconds")), output_field=FloatField())
    pending = open_steps.aggregate(total=Sum(charge))["total"] or 0.0
    return compute_seconds_used(user, now) + pending


def compute_period_frees(user, now=None):
    """When the oldest compute-seconds counted this period leave it (a sliding window): the earliest finish of
    the user's runs counted by ``compute_seconds_used`` plus the period; None when none are counted."""
    start = compute_period_start(now)
    first = (Run.objects.filter(created_by=user, finished_at__gte=start, steps__compute_seconds__gt=0)
             .order_by("finished_at").values_list("finished_at", flat=True).first())
    return first + timedelta(days=settings.NEUROX_COMPUTE_PERIOD_DAYS) if first else None
