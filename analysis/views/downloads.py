"""The Downloads view of a run, and each download (the logic is in ``analysis.downloads``, shared with the API)."""

from django.shortcuts import render

from .. import downloads as files
from ..provenance import provenance_of
from ..workspace import ViewState, run_in_project


def downloads(request, pk, run_id):
    run = run_in_project(request.user, pk, run_id)
    entries = files.downloads_of(run)
    for entry in entries:
        entry["provenance"] = provenance_of(entry["step"])
    return render(request, "analysis/workspace/downloads.html", {
        "run": run, "project": run.project, "current_project": run.project, "state": ViewState.from_request(request),
        "tab": "downloads", "title": "Downloads", "entries": entries})


def download(request, pk, run_id, step_id, name):
    run = run_in_project(request.user, pk, run_id)
    return files.download(run, step_id, name, request.GET.get("set"))
