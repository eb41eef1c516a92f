"""A neuron's page (deep-linkable, keeps the view state) and its correlations partial, loaded after the page
because the first look at a neuron reads its model's store (see ``analysis.workspace.neuron.presenter``)."""

from django.shortcuts import render

from analysis.steps.provenance import provenance_of
from analysis.workspace import POOL_LIMIT, ViewState, run_view_for
from analysis.workspace.neuron import presenter as neuron_presenter


def _context(request, run, **more):
    return {"run": run, "project": run.project, "current_project": run.project,
            "state": ViewState.from_request(request), "tab": "analysis", **more}


def _missing(request, run, label, error):
    return render(request, "analysis/workspace/neuron_missing.html",
                  _context(request, run, title=f"Neuron {label}", message=str(error)), status=404)


def neuron_page(request, pk, run_id, neuron):
    view = run_view_for(request.user, pk, run_id)
    run, state = view.run, ViewState.from_request(request)
    try:
        found = neuron_presenter.find_neuron(view, neuron, state.extra.get("model"))
    except neuron_presenter.NeuronNotFound as error:
        return _missing(request, run, neuron, error)
    statistics = neuron_presenter.neuron_statistics(found)
    label_names = list(statistics["label_means"]) if statistics else []
    stats_step = found.model.statistics_step
    return render(request, "analysis/workspace/neuron.html", _context(
        request, run, title=f"Neuron {found.label}", found=found, stats=statistics,
        detection=neuron_presenter.detection_sentence(statistics and statistics["best_label"], label_names),
        histogram=neuron_presenter.histogram_chart(statistics["histogram"]) if statistics else None,
        label_rows=neuron_presenter.label_mean_rows(statistics, label_names) if statistics else [],
        ranks=neuron_presenter.ranks_of(found), in_pool=found.label in state.pool,
        pool_full=len(state.pool) >= POOL_LIMIT,
        add_query=state.query(pool=state.pool + (found.label,)),
        provenance=provenance_of(stats_step, neuron=found.label) if stats_step else None))


def neuron_correlations(request, pk, run_id, neuron):
    view = run_view_for(request.user, pk, run_id)
    state = ViewState.from_request(request)
    try:
        found = neuron_presenter.find_neuron(view, neuron, state.extra.get("model"))
    except neuron_presenter.NeuronNotFound as error:
        return render(request, "analysis/workspace/_neuron_correlations.html",
                      _context(request, view.run, error=str(error)), status=404)
    return render(request, "analysis/workspace/_neuron_correlations.html", _context(
        request, view.run, found=found, same_model=neuron_presenter.correlated_in_model(view, found),
        other_models=neuron_presenter.correlated_in_other_models(view, found),
        position=neuron_presenter.position_correlation(found)))
