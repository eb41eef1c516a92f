"""HTML pages for runs: a project's runs (a link to the new-analysis form, and a "Start a run with the
defaults" button) and the run page, live over the run websocket (``analysis.runs.consumers``), with cancel and
retry for editors and owners.

Runs are found through ``analysis.runs.selectors`` and changed by ``analysis.runs.services``, as in the API.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from projects.selectors import can_write, project_for

from analysis.runs import selectors, services
from analysis.workspace import ViewState, run_in_project

DEFAULT_RANKINGS = ["lca", "anova", "probeless"]


def _default_request(project) -> dict:
    """The project's first model and corpus, hidden states, LCA + ANOVA + probeless, statistics."""
    model = project.model_uploads.order_by("pk").first()
    corpus = project.corpus_uploads.order_by("pk").first()
    return {"models": [model.pk] if model else [], "corpus": corpus.pk if corpus else None,
            "neuron_sets": ["hidden"], "rankings": DEFAULT_RANKINGS, "statistics": True}


@require_http_methods(["GET", "POST"])
def run_list(request, pk):
    project = project_for(request.user, pk, write=request.method == "POST")
    if request.method == "POST":
        try:
            run = services.create_run(request.user, project, _default_request(project))
        except ValidationError as error:
            for message in error.messages:
                messages.error(request, message)
        else:
            return redirect("analysis:run-detail", project.pk, run.pk)
    runs = selectors.runs_visible_to(request.user).filter(project=project)
    return render(request, "analysis/run_list.html", {
        "project": project, "current_project": project, "runs": runs, "can_write": can_write(request.user, project)})


def run_detail(request, pk, run_id):
    """The loading screen: a bar per step with its time left, the live log, cancel and retry; once the run has
    succeeded, the way into its views (also swapped in live by the websocket when it finishes)."""
    run = run_in_project(request.user, pk, run_id)
    lines = selectors.last_log_lines(run)
    return render(request, "analysis/run_detail.html", {
        "run": run, "project": run.project, "current_project": run.project,
        "steps": selectors.steps_with_time_left(run),
        "waiting_reason": selectors.waiting_reason(run), "lines": lines,
        "can_write": can_write(request.user, run.project), "state": ViewState.from_request(request), "tab": "run",
        "title": f"Run {run.pk} of {run.project.name}"})


def _after_action(request, run, message: str | None) -> HttpResponse:
    if request.htmx:
        run.refresh_from_db()
        return render(request, "analysis/_run_status.html", {"run": run, "can_write": True, "message": message,
                                                             "waiting_reason": selectors.waiting_reason(run)})
    if message:
        messages.error(request, message)
    return redirect("analysis:run-detail", run.project_id, run.pk)


def _change_run(request, pk, run_id, change):
    """Cancel or retry (``change`` is the service), then show the run as it is now, or why it could not."""
    run = run_in_project(request.user, pk, run_id)
    try:
        change(request.user, run)
    except services.RunStateError as error:
        return _after_action(request, run, error.message)
    return _after_action(request, run, None)


@require_POST
def run_cancel(request, pk, run_id):
    return _change_run(request, pk, run_id, services.cancel_run)


@require_POST
def run_retry(request, pk, run_id):
    return _change_run(request, pk, run_id, services.retry_run)
