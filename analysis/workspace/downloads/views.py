"""The Downloads view of a run, and each download (what they hold is in ``analysis.workspace.downloads.presenter``,
shared with the API)."""

from django.shortcuts import render

from analysis.steps.provenance import provenance_of
from analysis.workspace import ViewState, run_view_for
from analysis.workspace.downloads.presenter import download_response, downloads_of


def downloads(request, pk, run_id):
    view = run_view_for(request.user, pk, run_id)
    entries = downloads_of(view)
    for entry in entries:
        entry["provenance"] = provenance_of(entry["step"])
    return render(request, "analysis/workspace/downloads.html", {
        "run": view.run, "project": view.run.project, "current_project": view.run.project,
        "state": ViewState.from_request(request), "tab": "downloads", "title": "Downloads", "entries": entries})


def download(request, pk, run_id, step_id, name):
    return download_response(run_view_for(request.user, pk, run_id), step_id, name, request.GET.get("set"))
