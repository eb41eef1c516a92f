"""The Ablation view of a run: every ablation curve (probe and model-level) as a server-rendered SVG chart,
with toggles per curve and per removal direction kept in the URL (``curves=``, ``series=``), a partial that htmx
swaps when a toggle changes (and polls while a curve is still computing), and CSV / SVG downloads of each curve.
What they show comes from ``analysis.workspace.ablation.presenter``; these views only read the run and render."""

from __future__ import annotations

from urllib.parse import parse_qsl

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django_htmx.http import push_url

from analysis.workspace import ViewState, run_view_for
from analysis.workspace.ablation.presenter import (
    canonical, chart_svg, chosen, curve_csv, DIRECTIONS, find_curve, panels_of,
)


def _context(request, view) -> dict:
    run, panels = view.run, panels_of(view)
    curves = [curve for panel in panels for curve in panel.curves]
    known_curves = [curve.id for curve in curves]
    # a translation run's BLEU, chrF and loss per ranking make many charts: the main metric's until asked
    primary_curves = [curve.id for curve in curves if curve.primary]
    shown_curves = chosen(request, "curves", known_curves, default=primary_curves)
    directions = chosen(request, "series", DIRECTIONS)
    state = ViewState.from_request(request)
    query = state.query(curves=canonical(shown_curves, primary_curves),
                        series=canonical(directions, DIRECTIONS), toggles="")
    sections = [(panel, [(curve, chart_svg(curve, directions)) for curve in panel.curves
                         if curve.id in shown_curves]) for panel in panels]
    carry = [(k, v) for k, v in parse_qsl(state.query(curves="", series="", toggles=""))]
    return {"run": run, "project": run.project, "current_project": run.project, "state": state, "tab": "ablation",
            "title": "Ablation", "panels": panels, "curves": curves, "shown_curves": shown_curves,
            "directions": [(key, name, key in directions) for key, name in DIRECTIONS.items()],
            "sections": sections, "any_shown": any(charts for _, charts in sections), "query": query, "carry": carry,
            "no_direction": not directions,
            "series_query": canonical(directions, DIRECTIONS),
            "computing": any(panel.computing for panel in panels)}


def ablation(request, pk, run_id):
    view = run_view_for(request.user, pk, run_id)
    return render(request, "analysis/workspace/ablation.html", _context(request, view))


def ablation_charts(request, pk, run_id):
    """The charts partial, for the toggles and the poll while a curve is computing; a toggle puts its state in
    the page's URL, so the view can be shared and reloaded as it is."""
    context = _context(request, run_view_for(request.user, pk, run_id))
    response = render(request, "analysis/workspace/_ablation_charts.html", context)
    if "toggles" in request.GET:
        page = reverse("analysis:run-ablation", args=[pk, run_id])
        push_url(response, f"{page}?{context['query']}" if context["query"] else page)
    return response


def _curve(request, pk, run_id, curve_id):
    view = run_view_for(request.user, pk, run_id)
    curve = find_curve(view, curve_id)
    if curve is None:
        raise Http404("No such ablation curve in this run.")
    return view.run, curve


def ablation_csv(request, pk, run_id, curve_id):
    run, curve = _curve(request, pk, run_id, curve_id)
    response = HttpResponse(curve_csv(curve), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run{run.pk}-ablation-{curve.id}.csv"'
    return response


def ablation_svg(request, pk, run_id, curve_id):
    """The chart as shown (the directions chosen with ``series=``), as a standalone SVG file."""
    run, curve = _curve(request, pk, run_id, curve_id)
    svg = '<?xml version="1.0" encoding="UTF-8"?>\n' + chart_svg(curve, chosen(request, "series", DIRECTIONS))
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run{run.pk}-ablation-{curve.id}.svg"'
    return response
