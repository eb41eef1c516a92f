"""A small line-chart renderer: server-rendered SVG, readable without colour and usable from the keyboard.

Each series has its own colour (Okabe–Ito, colour-blind safe), dash pattern and marker shape, so lines can be
told apart in greyscale and by people who do not see the colours; a band (e.g. the spread of random baselines)
is drawn behind its line. Every point is a focusable element (``tabindex="0"``) with an accessible name and a
tooltip that the chart's own CSS shows on hover and on keyboard focus, so the SVG works the same inline in a
page and as a downloaded file. The chart carries ``<title>`` and ``<desc>``.

``line_chart`` returns the SVG as a string with every text escaped; points carry ``data-series``, ``data-x``
and ``data-y`` so a test (or a script) reads back exactly what was drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

from django.utils.html import escape

# colour, dash pattern, marker: each series differs in all three.
STYLES = (
    ("#0072B2", "", "circle"),
    ("#D55E00", "7 4", "square"),
    ("#007A5A", "2 3", "triangle"),
    ("#882255", "9 3 2 3", "diamond"),
)
REFERENCE_COLOUR = "#4d4d4d"
CHAR_WIDTH = 6.6  # of the 12 px labels, to size tooltips and the legend without measuring text


@dataclass
class Point:
    x: float
    y: float
    text: str  # what the tooltip and the point's accessible name say


@dataclass
class Series:
    key: str
    name: str
    points: list[Point]
    band: list[tuple[float, float, float]] = field(default_factory=list)  # (x, low, high)
    band_name: str = ""
    style: int = 0


@dataclass
class Reference:
    """A horizontal line across the plot (e.g. the unablated baseline)."""

    y: float
    name: str


class LinearScale:
    """Maps the ``domain`` interval linearly onto the ``extent`` interval (pixels; reversed for a y-axis)."""

    def __init__(self, domain: tuple[float, float], extent: tuple[float, float]):
        lo, hi = domain
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        self.domain, self.extent = (lo, hi), extent

    def __call__(self, value: float) -> float:
        (d0, d1), (r0, r1) = self.domain, self.extent
        return r0 + (value - d0) * (r1 - r0) / (d1 - d0)


def nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 × 10ⁿ) giving about ``count`` intervals over ``span``."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power * (1 + 1e-9):
            return factor * power
    return 10 * power


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: the first at or below ``lo``, the last at or above ``hi``."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        lo, hi = (lo - 1, hi + 1) if lo == 0 else (lo - abs(lo) * 0.1, hi + abs(hi) * 0.1)
    step = nice_step(hi - lo, count)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [round(i * step, digits) for i in range(first, last + 1)]


def number(value: float) -> str:
    """A short label for a tick or a value: up to 4 significant digits, no trailing zeros."""
    if value == 0:
        return "0"
    text = f"{value:.4g}"
    return text if "e" in text else text.rstrip("0").rstrip(".") if "." in text else text


def _marker(shape: str, x: float, y: float, colour: str, size: float = 4.5) -> str:
    common = f'class="chart-marker" fill="{colour}" stroke="#fff" stroke-width="1"'
    if shape == "circle":
        return f'<circle {common} cx="{x:.1f}" cy="{y:.1f}" r="{size:.1f}"/>'
    if shape == "square":
        return f'<rect {common} x="{x - size:.1f}" y="{y - size:.1f}" width="{2 * size:.1f}" height="{2 * size:.1f}"/>'
    if shape == "triangle":
        s = size * 1.25
        return f'<path {common} d="M{x:.1f} {y - s:.1f}L{x + s:.1f} {y + s * 0.8:.1f}L{x - s:.1f} {y + s * 0.8:.1f}Z"/>'
    s = size * 1.3
    return f'<path {common} d="M{x:.1f} {y - s:.1f}L{x + s:.1f} {y:.1f}L{x:.1f} {y + s:.1f}L{x - s:.1f} {y:.1f}Z"/>'


STYLE_SHEET = (
    "text{font:12px system-ui,-apple-system,'Segoe UI',sans-serif;fill:#1d232b}"
    ".chart-title{font-size:14px;font-weight:600}"
    ".chart-grid{stroke:#e3e6ea;stroke-width:1}"
    ".chart-axis{stroke:#5b6672;stroke-width:1}"
    ".chart-tip{visibility:hidden;pointer-events:none}"
    ".chart-tip rect{fill:#1d232b}.chart-tip text{fill:#fff}"
    ".chart-point{cursor:default;outline:none}"
    ".chart-focus{visibility:hidden;fill:none;stroke:#1d232b;stroke-width:2.5}"
    ".chart-point:hover .chart-tip,.chart-point:focus .chart-tip,.chart-point:focus .chart-focus"
    "{visibility:visible}"
)


@dataclass
class _Plot:
    """The plot area in pixels (``left``/``top`` corner, ``width`` × ``height``) and the scales onto it."""

    left: int
    top: int
    width: int
    height: int
    sx: LinearScale
    sy: LinearScale


def line_chart(*, chart_id: str, title: str, desc: str, x_label: str, y_label: str, series: Sequence[Series],
               references: Sequence[Reference] = (), x_domain: tuple[float, float] | None = None,
               x_tick_text: Callable[[float], Sequence[str]] = lambda v: [number(v)],
               width: int = 680, height: int = 380) -> str:
    """The whole chart as an SVG document (also valid inline in HTML)."""
    left, right, top = 70, 34, 34
    legend = _legend_rows(series, references, width - left - right)
    bottom = 62 + 20 * len(legend)
    plot_w, plot_h = width - left - right, height - top - bottom
    xs, ys = _plotted_values(series, references)
    x_ticks = ticks(*(x_domain or (min(xs), max(xs))), count=5)
    y_ticks = ticks(min(ys), max(ys), count=5)
    sx = LinearScale((x_ticks[0], x_ticks[-1]), (left, left + plot_w))
    sy = LinearScale((y_ticks[0], y_ticks[-1]), (top + plot_h, top))
    plot = _Plot(left, top, plot_w, plot_h, sx, sy)
    e = escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{e(chart_id)}" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="group" aria-labelledby="{e(chart_id)}-title {e(chart_id)}-desc">',
           f'<title id="{e(chart_id)}-title">{e(title)}</title><desc id="{e(chart_id)}-desc">{e(desc)}</desc>',
           f"<style>{STYLE_SHEET}</style>",
           f'<rect width="{width}" height="{height}" fill="#fff"/>',
           f'<text class="chart-title" x="{left}" y="20" aria-hidden="true">{e(title)}</text>']
    out.append(_axes_svg(plot, x_ticks, y_ticks, x_tick_text, x_label, y_label, references))
    # bands behind every line, then lines, then points on top
    out.extend(_band_svg(s, plot) for s in series if s.band)
    out.extend(_series_svg(s, plot) for s in series)
    out.append(_legend_svg(legend, left, top + plot_h + 62))
    out.append("</svg>")
    return "".join(out)


def _plotted_values(series: Sequence[Series], references: Sequence[Reference]) -> tuple[list[float], list[float]]:
    """(x values, finite y values) that the axes must cover: points, bands and references; [0, 1] for none."""
    xs = [p.x for s in series for p in s.points] or [0.0, 1.0]
    ys = [p.y for s in series for p in s.points] + [b for s in series for _, lo, hi in s.band for b in (lo, hi)]
    ys += [r.y for r in references]
    ys = [y for y in ys if math.isfinite(y)] or [0.0, 1.0]
    return xs, ys


def _axes_svg(plot: _Plot, x_ticks, y_ticks, x_tick_text, x_label: str, y_label: str,
              references: Sequence[Reference]) -> str:
    """Grid, axes, tick labels, axis labels and the reference lines (hidden from assistive technology)."""
    e = escape
    left, top, plot_w, plot_h, sx, sy = plot.left, plot.top, plot.width, plot.height, plot.sx, plot.sy
    out = ['<g aria-hidden="true">']
    for value in y_ticks:
        y = sy(value)
        out.append(f'<line class="chart-grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{e(number(value))}</text>')
    for value in x_ticks:
        x = sx(value)
        out.append(f'<line class="chart-grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}"/>')
        for line, text in enumerate(x_tick_text(value)):
            out.append(f'<text x="{x:.1f}" y="{top + plot_h + 16 + 13 * line}" text-anchor="middle">{e(text)}</text>')
    out.append(f'<line class="chart-axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    out.append(f'<line class="chart-axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 48}" text-anchor="middle">{e(x_label)}</text>')
    out.append(f'<text transform="translate(16 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
               f"{e(y_label)}</text>")
    for reference in references:
        y = sy(reference.y)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{REFERENCE_COLOUR}" '
                   'stroke-width="1.5" stroke-dasharray="1 4" stroke-linecap="round"/>')
    out.append("</g>")
    return "".join(out)


def _band_svg(s: Series, plot: _Plot) -> str:
    """The series' band, a filled path from its upper edge back along its lower edge."""
    sx, sy = plot.sx, plot.sy
    colour = STYLES[s.style % len(STYLES)][0]
    upper = [f"{sx(x):.1f} {sy(hi):.1f}" for x, _, hi in s.band]
    lower = [f"{sx(x):.1f} {sy(lo):.1f}" for x, lo, _ in reversed(s.band)]
    return (f'<path class="chart-band" data-series="{escape(s.key)}" aria-hidden="true" fill="{colour}" '
            f'fill-opacity="0.16" stroke="{colour}" stroke-opacity="0.5" stroke-width="0.75" '
            f'd="M{"L".join(upper + lower)}Z"/>')


def _series_svg(s: Series, plot: _Plot) -> str:
    """The series' line through its finite points, and each finite point as a focusable element with a tooltip."""
    e = escape
    sx, sy = plot.sx, plot.sy
    colour, dash, shape = STYLES[s.style % len(STYLES)]
    path = "L".join(f"{sx(p.x):.1f} {sy(p.y):.1f}" for p in s.points if math.isfinite(p.y))
    out = [f'<g class="chart-series" data-series="{e(s.key)}" role="list" aria-label="{e(s.name)}">']
    if path:
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<path class="chart-line" aria-hidden="true" fill="none" stroke="{colour}" stroke-width="2.25"'
                   f'{dash_attr} d="M{path}"/>')
    for p in s.points:
        if not math.isfinite(p.y):
            continue
        x, y = sx(p.x), sy(p.y)
        label = f"{s.name}: {p.text}"
        tip = _tip(p.text, x, y, plot.left, plot.left + plot.width, plot.top)
        out.append(f'<g class="chart-point" tabindex="0" role="listitem" aria-label="{e(label)}" '
                   f'data-series="{e(s.key)}" data-x="{p.x!r}" data-y="{p.y!r}"><title>{e(label)}</title>'
                   f'<circle class="chart-focus" cx="{x:.1f}" cy="{y:.1f}" r="9"/>'
                   f"{_marker(shape, x, y, colour)}{tip}</g>")
    out.append("</g>")
    return "".join(out)


def _tip(text: str, x: float, y: float, x_min: float, x_max: float, y_min: float) -> str:
    width = len(text) * CHAR_WIDTH + 12
    tx = min(max(x - width / 2, x_min), x_max - width)
    ty = y - 34 if y - 34 >= y_min - 30 else y + 12
    return (f'<g class="chart-tip" aria-hidden="true"><rect x="{tx:.1f}" y="{ty:.1f}" width="{width:.1f}" '
            f'height="22" rx="3"/><text x="{tx + 6:.1f}" y="{ty + 15:.1f}">{escape(text)}</text></g>')


def _legend_items(series: Sequence[Series], references: Sequence[Reference]) -> list[tuple[str, str, Series | None]]:
    items = [("series", s.name, s) for s in series]
    items += [("band", s.band_name, s) for s in series if s.band and s.band_name]
    items += [("reference", r.name, None) for r in references]
    return items


def _legend_rows(series, references, width: float) -> list[list[tuple[str, str, Series | None]]]:
    rows, current, used = [], [], 0.0
    for item in _legend_items(series, references):
        item_width = 44 + len(item[1]) * CHAR_WIDTH + 18
        if current and used + item_width > width:
            rows.append(current)
            current, used = [], 0.0
        current.append(item)
        used += item_width
    if current:
        rows.append(current)
    return rows


def _legend_svg(rows, left: float, top: float) -> str:
    out = ['<g class="chart-legend" aria-hidden="true">']
    for r, row in enumerate(rows):
        x, y = left, top + 20 * r
        for kind, name, s in row:
            if kind == "series":
                colour, dash, shape = STYLES[s.style % len(STYLES)]
                dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
                out.append(f'<line x1="{x}" x2="{x + 34}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2.25"'
                           f'{dash_attr}/>{_marker(shape, x + 17, y, colour)}')
            elif kind == "band":
                colour = STYLES[s.style % len(STYLES)][0]
                out.append(f'<rect x="{x}" y="{y - 6}" width="34" height="12" fill="{colour}" fill-opacity="0.16" '
                           f'stroke="{colour}" stroke-opacity="0.5"/>')
            else:
                out.append(f'<line x1="{x}" x2="{x + 34}" y1="{y}" y2="{y}" stroke="{REFERENCE_COLOUR}" '
                           'stroke-width="1.5" stroke-dasharray="1 4" stroke-linecap="round"/>')
            out.append(f'<text x="{x + 42}" y="{y + 4}">{escape(name)}</text>')
            x += 44 + len(name) * CHAR_WIDTH + 18
    out.append("</g>")
    return "".join(out)
