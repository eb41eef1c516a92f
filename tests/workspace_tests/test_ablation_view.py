"""The Ablation view on runs computed for real (eager pipeline on the tiny BERT): the charts hold exactly the
curve JSON's series and points, the toggles change the series and the URL, the CSV round-trips to the numbers,
the SVG download is the chart, the empty / computing / failed states, and the permission matrix."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from analysis.runs import services
from analysis.models import StepKind, StepState
from analysis.workspace import document_of
from projects.services.attachments import attach_upload
from projects.services.library import create_test_set_upload
from tests.support.clients import client_for
from tests.support.roles import MEMBERS, ROLES, expected_status
from tests.support.runs import request_for
from tests.support.uploads import upload_model

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"


def page(run, tail=""):
    return f"/projects/{run.project_id}/runs/{run.pk}/ablation/{tail}"


def svgs_of(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", html, flags=re.S)]


def points_of(svg: ET.Element) -> dict[str, list[tuple[float, float]]]:
    found = {}
    for point in svg.iter(f"{SVG}g"):
        if point.get("class") == "chart-point":
            found.setdefault(point.get("data-series"), []).append((float(point.get("data-x")),
                                                                   float(point.get("data-y"))))
    return found


def probe_step(run):
    return run.steps.get(kind=StepKind.PROBE_ABLATION)


def expected_probe_points(run) -> dict[str, list[tuple[float, float]]]:
    """The zero-out curve of the JSON as removal lines: keeping the bottom-ranked = removing the top first."""
    curves = document_of(probe_step(run))["curves"]["zero_out"]
    kept_to_removed = {"bottom": "top", "top": "bottom", "random": "random"}
    return {kept_to_removed[kept]: sorted(zip(line["removed_percent"], line["accuracy"]))
            for kept, line in curves.items()}


# ------------------------------------------------------------------------------------------------ the chart


def test_the_chart_draws_every_series_and_point_of_the_curve_json(people, finished_run):
    response = client_for(people, "owner").get(page(finished_run))
    assert response.status_code == 200
    html = response.content.decode()
    [svg] = svgs_of(html)
    step = probe_step(finished_run)
    assert svg.get("id") == f"ablation-chart-{step.pk}-zero_out"
    assert points_of(svg) == expected_probe_points(finished_run)
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert "Probe accuracy" in labels  # the y-axis
    assert "Probe accuracy (zero-out: the probe's other inputs set to their mean; higher is better)" in unescape(html)
    assert any(label.startswith("Neurons removed: % (count of") for label in labels)
    assert {"Top-ranked removed first", "Bottom-ranked removed first", "Random order (mean)"} <= set(labels)
    baseline = document_of(step)["baseline_accuracy"]
    assert f"No neurons removed ({baseline:.4f})" in labels
    assert "random baseline: one order, so no spread." in html  # the fixture asks for one random draw
    assert not [p for p in svg.iter(f"{SVG}path") if p.get("class") == "chart-band"]
    assert "css/ablation.css" in html and "js/ablation.js" in html
    assert 'data-png-chart="ablation-chart-' in html  # the PNG button draws this chart


def test_every_point_names_its_value_for_hover_and_focus(people, finished_run):
    [svg] = svgs_of(client_for(people, "owner").get(page(finished_run)).content.decode())
    points = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "chart-point"]
    top = next(p for p in points if p.get("data-series") == "top" and float(p.get("data-x")) == 50)
    total = document_of(probe_step(finished_run))["n_neurons"]
    assert top.get("tabindex") == "0"
    assert top.get("aria-label") == (f"Top-ranked removed first: 50 % removed ({total // 2} of {total}), accuracy "
                                     f"{float(top.get('data-y')):.4f}")
    assert top.find(f"{SVG}title").text == top.get("aria-label")


def test_the_toggles_change_the_series_and_put_the_state_in_the_url(people, finished_run):
    curve_id = f"{probe_step(finished_run).pk}-zero_out"
    client = client_for(people, "owner")
    response = client.get(page(finished_run, "charts/"), {"toggles": "1", "curves": curve_id,
                                                         "series": ["top", "random"], "pools": "hidden:1:2"},
                          HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    [svg] = svgs_of(response.content.decode())
    assert set(points_of(svg)) == {"top", "random"}
    assert response["HX-Push-Url"] == page(finished_run) + f"?pools=hidden%3A1%3A2&series=top%2Crandom"
    # the pushed URL shows the same view when opened (a colleague, a reload)
    [again] = svgs_of(client.get(page(finished_run), {"pools": "hidden:1:2", "series": "top,random"}).content.decode())
    assert set(points_of(again)) == {"top", "random"}
    html = client.get(page(finished_run), {"series": "top,random"}).content.decode()
    assert re.search(r'value="bottom"(?! checked)>', html) and 'value="top" checked' in html


def test_unticking_everything_says_what_to_do(people, finished_run):
    client = client_for(people, "owner")
    response = client.get(page(finished_run, "charts/"), {"toggles": "1"}, HTTP_HX_REQUEST="true")
    assert svgs_of(response.content.decode()) == []
    assert "No curve is chosen: tick at least one curve above." in response.content.decode()
    assert response["HX-Push-Url"] == page(finished_run) + "?curves=none&series=none"
    curve_id = f"{probe_step(finished_run).pk}-zero_out"
    response = client.get(page(finished_run, "charts/"), {"toggles": "1", "curves": curve_id},
                          HTTP_HX_REQUEST="true")
    [svg] = svgs_of(response.content.decode())
    assert points_of(svg) == {}
    assert "No removal order is chosen" in response.content.decode()


# ------------------------------------------------------------------------------------------------ downloads


def test_the_csv_round_trips_to_the_curve_numbers(people, finished_run):
    step = probe_step(finished_run)
    response = client_for(people, "owner").get(page(finished_run, f"{step.pk}-zero_out/curve.csv"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert f'filename="run{finished_run.pk}-ablation-{step.pk}-zero_out.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    read = {}
    for row in rows:
        read.setdefault(row["direction"], []).append((float(row["percent_removed"]), float(row["value"])))
        assert row["metric"] == "accuracy" and row["ranking"] == "lca ranking"
    assert read == expected_probe_points(finished_run)
    data = document_of(step)["curves"]["zero_out"]["random"]
    random_rows = sorted((r for r in rows if r["direction"] == "random"), key=lambda r: -int(r["neurons_removed"]))
    assert [float(r["random_min"]) for r in random_rows] == data["accuracy_min"]
    assert [int(r["neurons_removed"]) for r in random_rows] == data["removed"]


def test_the_svg_download_is_the_chart_with_the_chosen_directions(people, finished_run):
    step = probe_step(finished_run)
    response = client_for(people, "owner").get(page(finished_run, f"{step.pk}-zero_out/chart.svg"),
                                               {"series": "bottom"})
    assert response.status_code == 200 and response["Content-Type"].startswith("image/svg+xml")
    assert "attachment" in response["Content-Disposition"]
    svg = ET.fromstring(response.content)
    assert svg.tag == f"{SVG}svg" and svg.find(f"{SVG}style") is not None  # styled on its own, as a file
    assert points_of(svg) == {"bottom": expected_probe_points(finished_run)["bottom"]}


@pytest.mark.parametrize("curve_id", ["999999-zero_out", "abc", "STEP-retrain"])
def test_an_unknown_curve_is_not_found(people, finished_run, curve_id):
    curve_id = curve_id.replace("STEP", str(probe_step(finished_run).pk))
    client = client_for(people, "owner")
    assert client.get(page(finished_run, f"{curve_id}/curve.csv")).status_code == 404
    assert client.get(page(finished_run, f"{curve_id}/chart.svg")).status_code == 404


def test_a_curve_of_another_run_is_not_found_through_this_run(people, finished_run, queued_run):
    curve_id = f"{probe_step(finished_run).pk}-zero_out"
    assert client_for(people, "owner").get(page(queued_run, f"{curve_id}/curve.csv")).status_code == 404


# ------------------------------------------------------------------------------------------------ states


def test_a_run_without_ablation_says_how_to_start_one(people, queued_run):
    html = client_for(people, "owner").get(page(queued_run)).content.decode()
    assert "This run has no ablation; start one with probe ablation" in html
    assert f'href="/projects/{queued_run.project_id}/runs/new/"' in html
    assert "<svg" not in html


def test_an_ablation_still_computing_says_so_and_the_charts_poll(people, attached, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(
            attached, probe_ablation={"percents": [50, 100], "random_seeds": 1, "modes": ["zero_out"]}))
    html = client_for(people, "owner").get(page(run)).content.decode()
    assert "Still computing (pending)" in html and 'hx-trigger="every 3s"' in html
    assert "<svg" not in html


@pytest.mark.parametrize("state, message", [
    (StepState.FAILED, "This ablation failed: Probe ablation ran out of memory."),
    (StepState.CANCELLED, "This ablation was cancelled before it finished."),
])
def test_a_failed_or_cancelled_ablation_says_so_and_shows_no_trace(people, finished_run, state, message):
    step = probe_step(finished_run)
    type(step).objects.filter(pk=step.pk).update(state=state, error="Probe ablation ran out of memory.")
    html = client_for(people, "owner").get(page(finished_run)).content.decode()
    assert message in html and "Retry the run from the" in html
    assert "Traceback" not in html and "<svg" not in html and 'hx-trigger="every 3s"' not in html


# ------------------------------------------------------------------------------------------------ model-level


def run_model_ablation(people, attached, capture, model):
    test_set = create_test_set_upload(people["owner"], file=SimpleUploadedFile(
        "test.txt", b"the cat sat on the mat .\na dog ran to the park .\nmy cat likes tea .\n"), name="three")
    attach_upload(people["owner"], people["project"], test_set)
    with capture(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(
            attached, models=[model.pk], rankings=[{"method": "probeless", "bootstrap": 0}], statistics=False,
            model_ablation={"test_set": test_set.pk, "percents": [50, 100], "random_seeds": 2}))
    run.refresh_from_db()
    return run


@pytest.fixture
def model_ablation_run(people, attached, django_capture_on_commit_callbacks):
    return run_model_ablation(people, attached, django_capture_on_commit_callbacks, attached["model"])


def test_a_model_ablation_curve_is_drawn_with_its_metric_and_random_spread(people, model_ablation_run):
    step = model_ablation_run.steps.get(kind=StepKind.MODEL_ABLATION)
    assert step.state == StepState.SUCCEEDED, step.error
    data = document_of(step)
    opened = client_for(people, "owner").get(page(model_ablation_run)).content.decode()
    # the task's main metric until the toggles ask for more; every metric is offered as a toggle
    assert [s.get("id") for s in svgs_of(opened)] == [f"ablation-chart-{step.pk}"]
    assert f'value="{step.pk}" checked' in opened and re.search(rf'value="{step.pk}-accuracy"(?! checked)>', opened)
    html = client_for(people, "owner").get(page(model_ablation_run),
                                           {"curves": f"{step.pk},{step.pk}-accuracy"}).content.decode()
    assert "random baseline: mean of 2 orders, shaded from their minimum to their maximum." in html
    loss, accuracy = svgs_of(html)
    assert (loss.get("id"), accuracy.get("id")) == (f"ablation-chart-{step.pk}", f"ablation-chart-{step.pk}-accuracy")
    for svg, metric, label in ((loss, "loss", "Masked-LM loss"), (accuracy, "accuracy", "Masked-LM accuracy")):
        expected = {order: list(zip(data["x"]["percent"], values[metric])) for order, values in data["curves"].items()}
        assert points_of(svg) == expected
        labels = [t.text for t in svg.iter(f"{SVG}text")]
        assert label in labels and "Random: min–max over 2 orders" in labels
    svg = loss
    [band] = [p for p in svg.iter(f"{SVG}path") if p.get("class") == "chart-band"]
    assert band.get("data-series") == "random"
    rows = list(csv.DictReader(io.StringIO(client_for(people, "owner").get(
        page(model_ablation_run, f"{step.pk}/curve.csv")).content.decode())))
    last_random = [r for r in rows if r["direction"] == "random"][-1]
    finals = [c["loss"][-1] for c in data["random_curves"]]
    assert (float(last_random["random_min"]), float(last_random["random_max"])) == (min(finals), max(finals))
    assert last_random["random_orders"] == "2" and {r["metric"] for r in rows} == {"loss"}
    only_accuracy = client_for(people, "owner").get(page(model_ablation_run), {"curves": f"{step.pk}-accuracy"})
    assert [s.get("id") for s in svgs_of(only_accuracy.content.decode())] == [f"ablation-chart-{step.pk}-accuracy"]


# ------------------------------------------------------------------------------------------------ permissions


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("tail", ["", "charts/", "STEP-zero_out/curve.csv", "STEP-zero_out/chart.svg"])
def test_the_ablation_view_and_its_downloads_are_for_members(people, finished_run, who, tail):
    tail = tail.replace("STEP", str(probe_step(finished_run).pk))
    response = client_for(people, who).get(page(finished_run, tail))
    assert response.status_code == (302 if who == "anonymous" else expected_status(who, MEMBERS))
    if who == "anonymous":
        assert response["Location"].startswith("/accounts/login/")


def test_the_ablation_view_is_only_found_under_its_own_project(people, finished_run):
    from tests.factories import ProjectFactory

    elsewhere = ProjectFactory(owner=people["owner"])
    response = client_for(people, "owner").get(f"/projects/{elsewhere.pk}/runs/{finished_run.pk}/ablation/")
    assert response.status_code == 404


def test_a_headless_encoder_curve_says_it_measures_a_probe_through_the_model(
        people, attached, headless_bert, django_capture_on_commit_callbacks):
    encoder = upload_model(people["owner"], headless_bert, name="headless bert")
    attach_upload(people["owner"], people["project"], encoder)
    run = run_model_ablation(people, attached, django_capture_on_commit_callbacks, encoder)
    step = run.steps.get(kind=StepKind.MODEL_ABLATION)
    assert step.state == StepState.SUCCEEDED, step.error
    html = client_for(people, "owner").get(page(run)).content.decode()
    [svg] = svgs_of(html)
    assert "Probe accuracy" in [t.text for t in svg.iter(f"{SVG}text")]
    assert "the encoder has no masked-LM head: a probe's accuracy on the corpus's test sentences, neurons zeroed " \
           "inside the model" in unescape(html)
    data = document_of(step)
    assert points_of(svg) == {order: list(zip(data["x"]["percent"], values["accuracy"]))
                              for order, values in data["curves"].items()}
