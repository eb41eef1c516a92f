"""The new-analysis form (editors and owners): models, corpus, neuron sets and layers, statistics and ablations,
rankings added through a dialog, and an estimate that updates as the form changes.

The form builds the API's request dict and ``services.create_run`` validates it (one place); its messages are
shown next to their fields. The estimate (``analysis.runs.estimates``) plans the same steps and keys without
storing anything.
"""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from projects.selectors import can_write, project_for

from analysis.runs import estimates, services
from analysis.runs.forms import NewRunForm, RankingForm, describe_ranking, method_defaults


def _project_to_run_in(request, pk):
    """The project, for its editors and owners; a viewer is told why not (403), a stranger gets 404."""
    project = project_for(request.user, pk)
    if not can_write(request.user, project):
        raise PermissionDenied("Viewers cannot start runs; ask an owner of the project for the editor role.")
    return project


@require_http_methods(["GET", "POST"])
def new_run(request, pk):
    project = _project_to_run_in(request, pk)
    form = NewRunForm(project, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.create_run(request.user, project, form.request_dict())
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            return redirect("analysis:run-detail", project.pk, run.pk)
    return render(request, "analysis/new_run.html", {
        "project": project, "current_project": project, "form": form, "ranking_form": RankingForm(),
        "method_defaults": method_defaults()}, status=400 if form.errors else 200)


@require_POST
def new_run_estimate(request, pk):
    """The estimate partial for the form as it is now (htmx posts the whole form on every change)."""
    project = _project_to_run_in(request, pk)
    form = NewRunForm(project, request.POST)
    context = {"project": project}
    if form.is_valid():
        try:
            context["estimate"] = estimates.with_limits(estimates.estimate(project, form.request_dict()), request.user)
        except ValidationError as error:
            form.add_service_errors(error)
    context["problems"] = [message for messages in form.errors.values() for message in messages]
    return render(request, "analysis/_estimate.html", context)


@require_POST
def new_run_ranking(request, pk):
    """The rankings dialog's "Add": one list item for the form (a hidden input with the ranking's JSON), or the
    dialog's error message retargeted into the dialog."""
    _project_to_run_in(request, pk)
    form = RankingForm(request.POST)
    if not form.is_valid():
        problems = [f"{form.fields[name].label if name in form.fields else name}: {' '.join(errors)}"
                    for name, errors in form.errors.items()]
        response = render(request, "analysis/new_run.html#dialog-errors", {"problems": problems})
        response["HX-Retarget"] = "#ranking-dialog-errors"
        response["HX-Reswap"] = "innerHTML"
        return response
    entry = form.entry()
    return render(request, "analysis/new_run.html#ranking-item",
                  {"value": json.dumps(entry), "text": describe_ranking(entry)})
