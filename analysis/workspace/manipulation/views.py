"""The Manipulation view of a run: a sentence, a slider per neuron, the original and manipulated outputs side by
side (updated as a slider moves, from a realtime worker), presets and saved recipes. What the page shows comes
from its ``presenter``; recipes are saved and deleted by ``analysis.workspace.recipes``; these views parse, check
permissions and render."""

import time
from types import SimpleNamespace
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from projects.selectors import can_write, project_for

from analysis.models import ManipulationRecipe
from analysis.runs import realtime
from analysis.workspace import ViewState, recipes, run_view_for
from analysis.workspace.manipulation import presenter as manipulation_presenter
from analysis.workspace.recipes import RecipeError, clean_recipe


def _recipe_row(project, recipe_id):
    if recipe_id is None:
        return None
    try:
        return project.manipulation_recipes.get(pk=recipe_id)
    except ManipulationRecipe.DoesNotExist:
        raise Http404("No such recipe in this project.")


def _state(query, view):
    """(view state, the recipe row of ``recipe=`` or None, the page) for a query string."""
    state = ViewState.from_request(SimpleNamespace(GET=query))
    recipe_row = _recipe_row(view.run.project, state.recipe)
    query = manipulation_presenter.effective_query(query, recipe_row)
    pool = ViewState.from_request(SimpleNamespace(GET=query)).pool
    return state, recipe_row, manipulation_presenter.page_state(view, query, pool)


@require_GET
def manipulation(request, pk, run_id):
    view = run_view_for(request.user, pk, run_id)
    run = view.run
    state, recipe_row, page = _state(request.GET, view)
    corpus = None
    if page["model"] is not None:
        cpage = request.GET.get("cpage", "")
        corpus = manipulation_presenter.corpus_sentences(
            page["model"].store(), request.GET.get("cq", "").strip()[:100],
            int(cpage) if cpage.isdigit() and int(cpage) > 0 else 1)
    return render(request, "analysis/workspace/manipulation.html", {
        "run": run, "project": run.project, "current_project": run.project, "state": state, "tab": "manipulation",
        "title": "Manipulation", "page": page, "corpus": corpus, "recipe_row": recipe_row,
        "recipes": run.project.manipulation_recipes.filter(Q(run=run) | Q(run__isnull=True))
                   .select_related("created_by"),
        "can_write": can_write(request.user, run.project), "cq": request.GET.get("cq", ""),
        "query": request.GET.urlencode()})


@require_GET
def manipulation_output(request, pk, run_id):
    """The partial the sliders refresh: original vs manipulated output (400/503/504 with a readable message)."""
    started = time.perf_counter()
    view = run_view_for(request.user, pk, run_id)
    _, _, page = _state(request.GET, view)
    context = {"page": page, "seq": request.GET.get("seq", "")}
    status, worker_ms = 200, None
    if not page["neurons"]:
        context["empty"] = True
    else:
        try:
            recipe = clean_recipe(view.run.project, page["recipe"], view.run)
            answer = manipulation_presenter.manipulate(view, recipe)
            worker_ms = answer.get("worker_ms")
            context["shown"] = manipulation_presenter.side_by_side(answer)
        except (RecipeError, realtime.RealtimeRequestError) as error:
            context["error"], status = error.message, 400
        except realtime.RealtimeUnavailable as error:
            context["error"], status = str(error), 503
        except realtime.RealtimeTimeout as error:
            context["error"], status = str(error), 504
    response = render(request, "analysis/workspace/_manip_output.html", context, status=status)
    response["X-Manipulation-Seq"] = context["seq"]
    timings = [f"view;dur={(time.perf_counter() - started) * 1000:.1f}"]
    if worker_ms is not None:
        timings.append(f"worker;dur={worker_ms:.1f}")  # inside the realtime worker
    response["Server-Timing"] = ", ".join(timings)
    return response


@require_POST
def recipe_save(request, pk, run_id):
    """Save the manipulation described by the page's query string (``query``) under ``name``."""
    view = run_view_for(request.user, pk, run_id)
    project = project_for(request.user, pk, write=True)
    query = QueryDict(request.POST.get("query", "").lstrip("?")[:8000])
    _, _, page = _state(query, view)
    page_url = reverse("analysis:run-manipulation", args=[pk, run_id])
    try:
        if page["model"] is None:
            raise RecipeError("model", "This run has no finished activations to manipulate.")
        row = recipes.create_recipe(request.user, project, name=request.POST.get("name"), recipe=page["recipe"],
                                     run=view.run)
    except RecipeError as error:
        messages.error(request, f"The recipe was not saved: {error.message}")
        return redirect(f"{page_url}?{query.urlencode()}" if query else page_url)
    messages.success(request, f"Saved the recipe “{row.name}”.")
    return redirect(f"{page_url}?{urlencode({'recipe': row.pk})}")


@require_POST
def recipe_delete(request, pk, run_id, recipe_id):
    view = run_view_for(request.user, pk, run_id)
    project = project_for(request.user, pk, write=True)
    row = get_object_or_404(ManipulationRecipe, pk=recipe_id, project=project)
    recipes.delete_recipe(request.user, row)
    messages.success(request, f"Deleted the recipe “{row.name}”.")
    return redirect("analysis:run-manipulation", pk, view.run.pk)
