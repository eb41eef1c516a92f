"""Reads of runs, always scoped to a user through the projects' one permission path."""

from __future__ import annotations

from django.http import Http404

from projects.selectors import projects_visible_to

from .models import LogLine, Run


def runs_visible_to(user):
    """Runs of the projects ``user`` is a member of (any role)."""
    return Run.objects.filter(project__in=projects_visible_to(user)).select_related("project", "created_by")


def run_for(user, pk) -> Run:
    """The run ``pk`` as ``user`` may see it, else ``Http404``."""
    try:
        return runs_visible_to(user).get(pk=pk)
    except (Run.DoesNotExist, ValueError, TypeError):
        raise Http404("No such run.")


def steps_of(run: Run):
    return run.steps.prefetch_related("needs").order_by("id")


def log_lines_after(run: Run, after: int = 0, limit: int = 1000):
    """The run's log lines numbered above ``after``, in order (a client catching up)."""
    return LogLine.objects.filter(run=run, seq__gt=after).order_by("seq")[:limit]
