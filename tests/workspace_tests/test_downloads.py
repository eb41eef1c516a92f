"""Downloads: the permission matrix (page, each download, the API), CSVs that parse back to the engine's
results, activations in JSON lines and HDF5 that read back equal to the store, streaming, and readable 404s."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from django.http import StreamingHttpResponse

from analysis.workspace.downloads.presenter import hdf5_path
from analysis.models import StepKind
from analysis.workspace import document_of, ranking_of, statistics_of, store_of
from tests.support.clients import api_client_for, client_for
from tests.support.roles import MEMBERS, ROLES, expected_status, page_status
from tests.support.urls import run_page_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_results_cache")]


def step(run, kind, **params):
    return run.steps.get(kind=kind, **{f"params__{k}": v for k, v in params.items()})


def download_url(run, step, name, query=""):
    return run_page_url(run, f"downloads/{step.pk}/{name}") + (f"?{query}" if query else "")


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def csv_rows(response):
    return list(csv.DictReader(io.StringIO(body(response).decode())))


@pytest.mark.parametrize("who", ROLES)
def test_the_downloads_page_is_for_members(people, finished_run, who):
    response = client_for(people, who).get(run_page_url(finished_run, "downloads/"))
    assert response.status_code == page_status(who, MEMBERS)
    if response.status_code == 200:
        html = response.content.decode()
        for s in finished_run.steps.all():
            assert s.title in html
        assert "ranking.csv" in html and "activations.hdf5" in html and "statistics.csv" in html


@pytest.mark.parametrize("who", ROLES)
def test_a_download_is_for_members_on_the_site_and_the_api(people, finished_run, who):
    ranking = step(finished_run, StepKind.RANKING, method="anova")
    response = client_for(people, who).get(download_url(finished_run, ranking, "ranking.csv"))
    assert response.status_code == page_status(who, MEMBERS)
    api = api_client_for(people, who).get(f"/api/v1/runs/{finished_run.pk}/downloads/{ranking.pk}/ranking.csv")
    assert api.status_code == expected_status(who, {"owner", "editor", "viewer"})
    if api.status_code == 200:
        assert body(api) == body(response)


def test_the_ranking_csv_parses_back_to_the_ranking(people, finished_run):
    ranking_step = step(finished_run, StepKind.RANKING, method="anova")
    response = client_for(people, "viewer").get(download_url(finished_run, ranking_step, "ranking.csv"))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        f'attachment; filename="run{finished_run.pk}-ranking-anova-2-resamples-tiny-bert.csv"')
    rows = csv_rows(response)
    ranking = ranking_of(ranking_step)
    assert [r["neuron"] for r in rows] == [ranking.neuron_ids[i].label for i in ranking.order]
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    np.testing.assert_array_equal([float(r["score"]) for r in rows], ranking.scores[ranking.order])
    low = ranking.confidence["rank_low"]
    assert [int(r["rank_low"]) for r in rows] == [low[i] + 1 for i in ranking.order]
    for label, order in ranking.per_label.items():
        by_neuron = {r["neuron"]: int(r[f"rank_{label}"]) for r in rows}
        assert [ranking.neuron_ids[i].label for i in order] == sorted(by_neuron, key=by_neuron.get)


def test_the_ranking_json_is_the_result_document(people, finished_run):
    ranking_step = step(finished_run, StepKind.RANKING, method="probeless")
    response = client_for(people, "owner").get(download_url(finished_run, ranking_step, "ranking.json"))
    assert json.loads(body(response)) == ranking_of(ranking_step).to_dict()


def test_the_statistics_csv_and_raw_files(people, finished_run):
    stats_step = step(finished_run, StepKind.STATISTICS)
    client = client_for(people, "owner")
    rows = csv_rows(client.get(download_url(finished_run, stats_step, "statistics.csv")))
    stats = statistics_of(stats_step)
    assert [r["neuron"] for r in rows] == [n.label for n in stats.neuron_ids]
    np.testing.assert_allclose([float(r["mean"]) for r in rows], stats.arrays["mean"])
    np.testing.assert_allclose([float(r["q0.5"]) for r in rows], stats.arrays["quantiles"][:, 3])
    assert {r["best_label"] for r in rows} <= set(stats.label_names)
    npz = client.get(download_url(finished_run, stats_step, "stats.npz"))
    with np.load(io.BytesIO(body(npz))) as arrays:
        np.testing.assert_array_equal(arrays["histogram"], stats.arrays["histogram"])
    meta = json.loads(body(client.get(download_url(finished_run, stats_step, "stats.json"))))
    assert meta["neurons"] == [n.label for n in stats.neuron_ids]


def test_the_curve_csv_has_every_point(people, finished_run):
    curve_step = step(finished_run, StepKind.PROBE_ABLATION)
    client = client_for(people, "owner")
    rows = csv_rows(client.get(download_url(finished_run, curve_step, "curve.csv")))
    points = document_of(curve_step)["points"]
    assert len(rows) == len(points)
    assert [float(r["accuracy"]) for r in rows] == [p["accuracy"] for p in points]
    assert json.loads(body(client.get(download_url(finished_run, curve_step, "curve.json")))) == document_of(curve_step)


def test_the_json_lines_export_reads_back(people, finished_run):
    extract = step(finished_run, StepKind.EXTRACT)
    response = client_for(people, "viewer").get(download_url(finished_run, extract, "activations.jsonl", "set=hidden"))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"].endswith('-hidden.jsonl"')
    store = store_of(extract.result_key)
    lines = [json.loads(line) for line in body(response).decode().splitlines()]
    assert len(lines) == store.n_sentences
    offsets = store.sentence_offsets
    for i in (0, len(lines) - 1):
        assert [f["token"] for f in lines[i]["features"]] == store.sentence(i)
        for layer in range(store.neuron_sets["hidden"]["layers"]):
            got = np.array([f["layers"][layer]["values"] for f in lines[i]["features"]])
            want = np.asarray(store.array("hidden", layer)[offsets[i]:offsets[i + 1]], dtype=np.float32)
            np.testing.assert_allclose(got, want, atol=1e-6)


def test_the_neurox_json_export_matches_the_engines_file(people, finished_run, tmp_path):
    from analysis.engine.interchange import export_neurox_json

    extract = step(finished_run, StepKind.EXTRACT)
    response = client_for(people, "owner").get(download_url(finished_run, extract, "activations.json"))
    expected = export_neurox_json(store_of(extract.result_key), tmp_path / "a.json").read_bytes()
    assert body(response) == expected


def test_the_hdf5_export_is_built_once_and_reads_back(people, finished_run):
    import h5py

    extract = step(finished_run, StepKind.EXTRACT)
    client = client_for(people, "owner")
    assert "built on request" in client.get(run_page_url(finished_run, "downloads/")).content.decode()
    response = client.get(download_url(finished_run, extract, "activations.hdf5"))
    assert response.status_code == 200 and response["Content-Type"] == "application/x-hdf5"
    store = store_of(extract.result_key)
    with h5py.File(io.BytesIO(body(response)), "r") as handle:
        assert len(handle) == store.n_sentences + 1  # + sentence_to_index
        first = handle["0"][()]
        want = np.stack([np.asarray(store.array("hidden", layer)[: store.sentence_offsets[1]], dtype=np.float32)
                         for layer in range(store.neuron_sets["hidden"]["layers"])])
        np.testing.assert_array_equal(first, want)
    built = hdf5_path(extract.result_key, "hidden")
    mtime = built.stat().st_mtime_ns
    assert body(client.get(download_url(finished_run, extract, "activations.hdf5"))) == built.read_bytes()
    assert built.stat().st_mtime_ns == mtime  # served, not built again
    assert ", ready)" in client.get(run_page_url(finished_run, "downloads/")).content.decode()


def test_the_cross_model_csv_names_each_model(people, two_model_run):
    cross = step(two_model_run, StepKind.CROSSMODEL)
    rows = csv_rows(client_for(people, "owner").get(download_url(two_model_run, cross, "ranking.csv")))
    assert {r["model"] for r in rows} == {"tiny bert", "tiny bert two"}
    assert len(rows) == sum(len(r.neuron_ids) for r in ranking_of(cross).values())


@pytest.mark.parametrize("name, query, message", [
    ("ranking.xlsx", "", "No download “ranking.xlsx” for this result."),
    ("activations.jsonl", "set=mlp", "This store has no neuron set “mlp” (it has hidden)."),
])
def test_a_bad_download_is_a_readable_404(people, finished_run, name, query, message):
    target = step(finished_run, StepKind.EXTRACT) if name.startswith("activations") else step(
        finished_run, StepKind.RANKING, method="anova")
    response = client_for(people, "owner").get(download_url(finished_run, target, name, query))
    assert response.status_code == 404
    assert message in response.content.decode()


def test_a_step_of_another_run_is_not_found(people, finished_run, queued_run):
    other = queued_run.steps.first()
    response = client_for(people, "owner").get(download_url(finished_run, other, "ranking.csv"))
    assert response.status_code == 404


def test_a_format_of_another_kind_is_not_found(people, finished_run):
    stats_step = step(finished_run, StepKind.STATISTICS)
    assert client_for(people, "owner").get(download_url(finished_run, stats_step, "ranking.csv")).status_code == 404


def test_activations_of_a_missing_store_are_a_readable_404(people, finished_run, folders):
    import shutil

    extract = step(finished_run, StepKind.EXTRACT)
    shutil.rmtree(folders["results"] / "stores" / extract.result_key)
    client = client_for(people, "owner")
    response = client.get(download_url(finished_run, extract, "activations.jsonl"))
    assert response.status_code == 404
    assert "is missing or incomplete; retry the run to rebuild it." in response.content.decode()
    assert "retry the run to rebuild it" in client.get(run_page_url(finished_run, "downloads/")).content.decode()
