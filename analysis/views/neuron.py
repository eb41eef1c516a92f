"""A neuron's page (deep-linkable, keeps the view state) and its correlations partial, loaded after the page
because the first look at a neuron reads its model's store (see ``analysis.neuron_page``)."""

from django.shortcuts import render

from .. import neuron_page as page
from ..provenance import provenance_of
from ..workspace import POOL_LIMIT, ViewState, run_in_project


def _context(request, run, **more):
    return {"run": run, "project": run.project, "current_project": run.project,
            "state": ViewState.from_request(request), "tab": "analysis", **more}


def _missing(request, run, label, error):
    return render(request, "analysis/workspace/neuron_missing.html",
                  _context(request, run, title=f"Neuron {label}", message=str(error)), status=404)


def neuron_page(request, pk, run_id, neuron):
    run = run_in_project(request.user, pk, run_id)
    state = ViewState.from_request(request)
    try:
        found = page.find_neuron(run, neuron, state.extra.get("model"))
    except page.NeuronNotFound as error:
        return _missing(request, run, neuron, error)
    statistics = page.neuron_statistics(run, found)
    label_names = list(statistics["label_means"]) if statistics else []
    stats_step = page.statistics_step(run, found.model.store_key)
    in_pool = found.label in state.pool
    return render(request, "analysis/workspace/neuron.html", _context(
        request, run, title=f"Neuron {found.label}", found=found, stats=statistics,
        detection=page.detection_sentence(statistics and statistics["best_label"], label_names),
        histogram=page.histogram_chart(statistics["histogram"]) if statistics else None,
        label_rows=page.label_mean_rows(statistics, label_names) if statistics else [],
        ranks=page.ranks_of(run, found), in_pool=in_pool,
        pool_full=len(state.pool) >= POOL_LIMIT,
        add_query=state.query(pool=state.pool + (found.label,)),
        provenance=provenance_of(stats_step, neuron=found.label) if stats_step else None))


def neuron_correlations(request, pk, run_id, neuron):
    run = run_in_project(request.user, pk, run_id)
    state = ViewState.from_request(request)
    try:
        found = page.find_neuron(run, neuron, state.extra.get("model"))
    except page.NeuronNotFound as error:
        return render(request, "analysis/workspace/_neuron_correlations.html",
                      _context(request, run, error=str(error)), status=404)
    return render(request, "analysis/workspace/_neuron_correlations.html", _context(
        request, run, found=found, same_model=page.correlated_in_model(run, found),
        other_models=page.correlated_in_other_models(run, found),
        position=page.position_correlation(run, found)))
