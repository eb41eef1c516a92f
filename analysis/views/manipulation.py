"""The Manipulation view of a run (placeholder: the workspace issue fills it in)."""

from django.shortcuts import render

from ..workspace import ViewState, run_in_project


def manipulation(request, pk, run_id):
    run = run_in_project(request.user, pk, run_id)
    return render(request, "analysis/workspace/placeholder.html", {
        "run": run, "project": run.project, "current_project": run.project, "state": ViewState.from_request(request),
        "tab": "manipulation", "title": "Manipulation"})
