"""The SVG line-chart renderer: scales and ticks, and a chart that parses as XML with what it was given."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from analysis.workspace import charts

SVG = "{http://www.w3.org/2000/svg}"


def test_a_linear_scale_maps_its_domain_onto_its_extent_either_way_round():
    x = charts.LinearScale((0, 100), (70, 670))
    assert (x(0), x(50), x(100)) == (70, 370, 670)
    y = charts.LinearScale((0.5, 1.0), (300, 20))  # a y-axis grows upwards
    assert (y(0.5), y(0.75), y(1.0)) == (300, 160, 20)
    flat = charts.LinearScale((3, 3), (0, 10))  # one value: still a usable scale, centred
    assert flat(3) == 5


@pytest.mark.parametrize("span, count, step", [(100, 5, 20), (1, 5, 0.2), (0.37, 5, 0.1), (7, 5, 2),
                                               (0.012, 4, 0.005), (2500, 5, 500), (0, 5, 1.0)])
def test_nice_steps_are_round(span, count, step):
    assert charts.nice_step(span, count) == pytest.approx(step)


@pytest.mark.parametrize("lo, hi, expected", [
    (0, 100, [0, 20, 40, 60, 80, 100]),
    (0.283, 0.917, [0.2, 0.4, 0.6, 0.8, 1.0]),
    (3.2, 3.9, [3.2, 3.4, 3.6, 3.8, 4.0]),
    (-0.3, 0.4, [-0.4, -0.2, 0.0, 0.2, 0.4]),
    (0.8, 0.8, [0.7, 0.75, 0.8, 0.85, 0.9]),
])
def test_ticks_are_round_and_cover_the_data(lo, hi, expected):
    values = charts.ticks(lo, hi)
    assert values == pytest.approx(expected)
    assert values[0] <= lo and values[-1] >= hi


def test_numbers_are_short():
    assert [charts.number(v) for v in (0, 0.5, 20.0, 0.123456, 1234.5678, 1e-7)] == \
        ["0", "0.5", "20", "0.1235", "1235", "1e-07"]


def chart(**overrides):
    series = [charts.Series("a", "Line <A>", [charts.Point(0, 1.0, "first"), charts.Point(50, 0.5, "second")]),
              charts.Series("b", "Line B", [charts.Point(0, 1.0, "b0"), charts.Point(50, 0.9, "b1")],
                            band=[(0, 0.9, 1.0), (50, 0.8, 0.95)], band_name="B's spread", style=1)]
    arguments = dict(chart_id="c1", title="A & B", desc="Two lines.", x_label="Removed (%)", y_label="Accuracy",
                     series=series, references=[charts.Reference(1.0, "Baseline")], x_domain=(0, 100))
    return ET.fromstring(charts.line_chart(**{**arguments, **overrides}))


def test_a_chart_is_a_labelled_svg_with_one_focusable_point_per_value():
    root = chart()
    assert root.tag == f"{SVG}svg" and root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.find(f"{SVG}title").text == "A & B" and root.find(f"{SVG}desc").text == "Two lines."
    points = root.findall(f".//{SVG}g[@class='chart-point']")
    assert [(p.get("data-series"), float(p.get("data-x")), float(p.get("data-y"))) for p in points] == [
        ("a", 0, 1.0), ("a", 50, 0.5), ("b", 0, 1.0), ("b", 50, 0.9)]
    assert all(p.get("tabindex") == "0" for p in points)
    first = points[0]
    assert first.get("aria-label") == "Line <A>: first" and first.find(f"{SVG}title").text == "Line <A>: first"
    tip = first.find(f"{SVG}g[@class='chart-tip']")
    assert tip.find(f"{SVG}text").text == "first"  # the value the CSS shows on hover and focus
    style = root.find(f"{SVG}style").text
    assert ".chart-point:hover .chart-tip,.chart-point:focus .chart-tip" in style


def test_lines_differ_by_dash_and_marker_not_only_by_colour():
    root = chart()
    lines = root.findall(f".//{SVG}path[@class='chart-line']")
    assert [line.get("stroke-dasharray") for line in lines] == [None, "7 4"]
    assert len({line.get("stroke") for line in lines}) == 2
    markers = [g.find(f"{SVG}*[@class='chart-marker']").tag for g in root.findall(f".//{SVG}g[@class='chart-point']")]
    assert markers == [f"{SVG}circle"] * 2 + [f"{SVG}rect"] * 2


def test_a_band_is_drawn_for_its_series_and_named_in_the_legend():
    root = chart()
    bands = root.findall(f".//{SVG}path[@class='chart-band']")
    assert [b.get("data-series") for b in bands] == ["b"]
    legend = [t.text for t in root.find(f"{SVG}g[@class='chart-legend']").iter(f"{SVG}text")]
    assert legend == ["Line <A>", "Line B", "B's spread", "Baseline"]


def test_ticks_and_axis_labels_are_drawn():
    root = chart(x_tick_text=lambda v: [f"{charts.number(v)} %", f"({int(v)})"])
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for label in ("0 %", "(0)", "100 %", "(100)", "Removed (%)", "Accuracy", "0.5", "1"):
        assert label in texts


def test_a_chart_without_points_still_renders():
    root = chart(series=[], references=[])
    assert root.findall(f".//{SVG}g[@class='chart-point']") == []
