"""The Ablation view of a run: every ablation curve (probe and model-level) as a server-rendered SVG chart,
with toggles per curve and per removal direction kept in the URL (``curves=``, ``series=``), a partial that htmx
swaps when a toggle changes (and polls while a curve is still computing), and CSV / SVG downloads of each curve.
The logic lives in ``analysis.ablation_view``; these views only read the run and render."""

from __future__ import annotations

from urllib.parse import parse_qsl

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django_htmx.http import push_url

from .. import ablation_view as view
from ..workspace import ViewState, run_in_project


def _context(request, run) -> dict:
    panels = view.panels_of(run)
    curves = [curve for panel in panels for curve in panel.curves]
    known_curves = [curve.id for curve in curves]
    # a translation run's BLEU, chrF and loss per ranking make many charts: the main metric's until asked
    primary_curves = [curve.id for curve in curves if curve.primary]
    shown_curves = view.chosen(request, "curves", known_curves, default=primary_curves)
    directions = view.chosen(request, "series", view.DIRECTIONS)
    state = ViewState.from_request(request)
    query = state.query(curves=view.canonical(shown_curves, primary_curves),
                        series=view.canonical(directions, view.DIRECTIONS), toggles="")
    sections = [(panel, [(curve, view.chart_svg(curve, directions)) for curve in panel.curves
                         if curve.id in shown_curves]) for panel in panels]
    carry = [(k, v) for k, v in parse_qsl(state.query(curves="", series="", toggles=""))]
    return {"run": run, "project": run.project, "current_project": run.project, "state": state, "tab": "ablation",
            "title": "Ablation", "panels": panels, "curves": curves, "shown_curves": shown_curves,
            "directions": [(key, name, key in directions) for key, name in view.DIRECTIONS.items()],
            "sections": sections, "any_shown": any(charts for _, charts in sections), "query": query, "carry": carry,
            "no_direction": not directions,
            "series_query": view.canonical(directions, view.DIRECTIONS),
            "computing": any(panel.computing for panel in panels)}


def ablation(request, pk, run_id):
    run = run_in_project(request.user, pk, run_id)
    return render(request, "analysis/workspace/ablation.html", _context(request, run))


def ablation_charts(request, pk, run_id):
    """The charts partial, for the toggles and the poll while a curve is computing; a toggle puts its state in
    the page's URL, so the view can be shared and reloaded as it is."""
    run = run_in_project(request.user, pk, run_id)
    context = _context(request, run)
    response = render(request, "analysis/workspace/_ablation_charts.html", context)
    if "toggles" in request.GET:
        page = reverse("analysis:run-ablation", args=[pk, run_id])
        push_url(response, f"{page}?{context['query']}" if context["query"] else page)
    return response


def _curve(request, pk, run_id, curve_id):
    run = run_in_project(request.user, pk, run_id)
    curve = view.find_curve(run, curve_id)
    if curve is None:
        raise Http404("No such ablation curve in this run.")
    return run, curve


def ablation_csv(request, pk, run_id, curve_id):
    run, curve = _curve(request, pk, run_id, curve_id)
    response = HttpResponse(view.curve_csv(curve), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run{run.pk}-ablation-{curve.id}.csv"'
    return response


def ablation_svg(request, pk, run_id, curve_id):
    """The chart as shown (the directions chosen with ``series=``), as a standalone SVG file."""
    run, curve = _curve(request, pk, run_id, curve_id)
    svg = '<?xml version="1.0" encoding="UTF-8"?>\n' + view.chart_svg(curve, view.chosen(request, "series",
                                                                                           view.DIRECTIONS))
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run{run.pk}-ablation-{curve.id}.svg"'
    return response
