"""The Analysis view of a run: the page, and the partials htmx swaps into it (rankings, neuron list, the
workbench of neuron list + pool + activation map, the map alone, typed-text search). Thin: parse the URL state,
call ``analysis.workspace.explore.presenter``, render. Every panel's state is in the query string
(``ViewState``): each control asks for its partial with the whole state, and the partial's answer moves the
address bar to the page with that same query (the ``HX-Push-Url`` header), so the URL is always the shareable view.
Without JavaScript the same links and forms load the whole page."""

from __future__ import annotations

from urllib.parse import parse_qsl

from django.shortcuts import render
from django.urls import reverse

from analysis.models import RunState
from analysis.workspace import POOL_LIMIT, ViewState, run_view_for
from analysis.workspace.explore import presenter as explore_presenter


class _Page:
    """What every template of the view gets: the run, its state, the rankings and the chosen one (or why not)."""

    def __init__(self, request, pk, run_id):
        self.view = run_view_for(request.user, pk, run_id)
        self.run = self.view.run
        self.state = ViewState.from_request(request)
        self.options = explore_presenter.ranking_options(self.view)
        self.chosen, self.error, self.status = None, "", 200
        self.pool, self.unknown = [], []
        try:
            self.chosen = explore_presenter.choose(self.view, self.options, self.state)
            if self.chosen is not None:
                self.pool, self.unknown = explore_presenter.pool_of(self.chosen, self.state)
        except explore_presenter.ExploreError as error:
            self.error, self.status = error.message, error.status

    def context(self, **more) -> dict:
        run, state = self.run, self.state
        args = [run.project_id, run.pk]
        page_url = reverse("analysis:run-analysis", args=args)
        return {"run": run, "project": run.project, "current_project": run.project, "state": state,
                "tab": "analysis", "title": "Analysis", "options": self.options,
                "option": self.chosen.option if self.chosen else None,
                "option_links": [(o, o.query(state)) for o in self.options],
                "typed_candidates": explore_presenter.TYPED_CANDIDATES, "typed_legend": explore_presenter.legend(),
                "map_clear_query": state.query(q="", page=1),
                "error": self.error, "pool": self.pool, "unknown": self.unknown, "pool_limit": POOL_LIMIT,
                "pool_changes": explore_presenter.pool_changes(state, self.pool), "page_url": page_url,
                "urls": {name: reverse(f"analysis:run-analysis-{name}", args=args)
                         for name in ("rankings", "neurons", "workbench", "map", "typed")},
                "hidden": {name: _fields(state, exclude) for name, exclude in FORM_FIELDS.items()},
                "running": run.state in (RunState.QUEUED, RunState.RUNNING), **more}


# What each form of the page sets itself; the rest of the state travels in hidden fields.
FORM_FIELDS = {"rankings": {"sub", "k"}, "neurons": {"set", "layer", "label", "npage"},
               "map": {"q", "page"}, "typed": {"text"}}


def _fields(state: ViewState, exclude: set[str]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in parse_qsl(state.query()) if k not in exclude]


def _pushing(response, page: _Page):
    """A partial's answer also moves the address bar to the page with the same state (shareable URL)."""
    query = page.state.query()
    url = reverse("analysis:run-analysis", args=[page.run.project_id, page.run.pk])
    response["HX-Push-Url"] = f"{url}?{query}" if query else url
    return response


def _panel(page: _Page, build, *args):
    """``(data, message)``: the panel's data, or the readable reason it cannot be shown."""
    if page.chosen is None:
        return None, page.error
    try:
        return build(page.chosen, *args), ""
    except explore_presenter.ExploreError as error:
        return None, error.message


def _rankings(page):
    return _panel(page, explore_presenter.ranking_panel, page.state)


def _neurons(page):
    return _panel(page, explore_presenter.neuron_list, page.state)


def _map(page):
    return _panel(page, lambda chosen: explore_presenter.activation_map(chosen, page.state, page.pool))


def _typed(page):
    text = page.state.extra.get("text", "").strip()
    if not text:
        return None, ""
    return _panel(page, lambda chosen: explore_presenter.typed_text(chosen, text, page.pool))


def analysis(request, pk, run_id):
    page = _Page(request, pk, run_id)
    (rankings, rankings_error), (neurons, neurons_error) = _rankings(page), _neurons(page)
    (corpus_map, map_error), (typed, typed_error) = _map(page), _typed(page)
    return render(request, "analysis/workspace/analysis.html", page.context(
        rankings=rankings, rankings_error=rankings_error, neurons=neurons, neurons_error=neurons_error,
        map=corpus_map, map_error=map_error, typed=typed, typed_error=typed_error), status=page.status)


def rankings_partial(request, pk, run_id):
    page = _Page(request, pk, run_id)
    rankings, error = _rankings(page)
    return _pushing(render(request, "analysis/workspace/_rank_panel.html",
                           page.context(rankings=rankings, rankings_error=error)), page)


def neurons_partial(request, pk, run_id):
    page = _Page(request, pk, run_id)
    neurons, error = _neurons(page)
    return _pushing(render(request, "analysis/workspace/_rank_neurons.html",
                           page.context(neurons=neurons, neurons_error=error)), page)


def workbench_partial(request, pk, run_id):
    """After the pool changed: the neuron list (its add/remove buttons), the pool and the map."""
    page = _Page(request, pk, run_id)
    (neurons, neurons_error), (corpus_map, map_error) = _neurons(page), _map(page)
    return _pushing(render(request, "analysis/workspace/_pool_workbench.html", page.context(
        neurons=neurons, neurons_error=neurons_error, map=corpus_map, map_error=map_error)), page)


def map_partial(request, pk, run_id):
    page = _Page(request, pk, run_id)
    corpus_map, error = _map(page)
    return _pushing(render(request, "analysis/workspace/_map.html",
                           page.context(map=corpus_map, map_error=error)), page)


def typed_partial(request, pk, run_id):
    page = _Page(request, pk, run_id)
    typed, error = _typed(page)
    if not error and typed is None and page.chosen is not None:
        error = "Type a sentence first."
    return _pushing(render(request, "analysis/workspace/_map_typed.html",
                           page.context(typed=typed, typed_error=error)), page)
