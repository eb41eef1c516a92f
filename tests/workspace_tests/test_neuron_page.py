"""The neuron page: permission matrix, its numbers equal the engine's, correlations against a NumPy reference
(same model, other models word by word, word position), deep links, and readable 404s for bad neurons."""

from __future__ import annotations

import re

import numpy as np
import pytest

from analysis.engine.neurons import NeuronId
from analysis.models import StepKind
from analysis.workspace import RunView, loaded, ranking_of, statistics_of, store_of
from analysis.workspace.neuron import presenter as neuron_presenter
from tests.support.clients import client_for
from tests.support.roles import MEMBERS, ROLES, page_status
from tests.support.urls import run_page_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_results_cache")]

NEURON = "L1:3"


def store_key(run):
    return run.steps.get(kind=StepKind.EXTRACT).result_key


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("tail", [f"neurons/{NEURON}/", f"neurons/{NEURON}/correlations/"])
def test_the_neuron_page_and_its_correlations_are_for_members(people, finished_run, who, tail):
    response = client_for(people, who).get(run_page_url(finished_run, tail))
    assert response.status_code == page_status(who, MEMBERS)
    if who == "anonymous":
        assert "/accounts/login/" in response["Location"]


def test_the_page_shows_the_engines_statistics(people, finished_run):
    response = client_for(people, "viewer").get(run_page_url(finished_run, f"neurons/{NEURON}/"))
    assert response.status_code == 200
    step = finished_run.steps.get(kind=StepKind.STATISTICS)
    store = store_of(store_key(finished_run))
    expected = statistics_of(step).for_neuron(NEURON, words=store.words)
    assert response.context["stats"] == expected
    html = response.content.decode()
    for value in ("mean", "std", "min", "max"):
        assert f"{expected[value]:.4f}" in html
    # one focusable bar per histogram bin, each saying its count, in the engine's order
    counts = [int(c) for c in re.findall(r'class="bar-group" tabindex="0" role="img" aria-label="[^"]*: (\d+) words"',
                                         html)]
    assert counts == expected["histogram"]["counts"]
    assert sum(counts) == store.n_words
    assert "<title id=\"hist-title\">" in html and "<desc id=\"hist-desc\">" in html
    # the highest context's word, highlighted
    top = expected["top_contexts"]["highest"][0]
    assert f"<mark>{top['word']}</mark>" in html
    # contexts sampled across the range: every bin
    assert html.count('class="bin-title"') == len(expected["sampled_contexts"]) > 0
    best = expected["best_label"]
    sentence = neuron_presenter.detection_sentence(best, list(expected["label_means"]))
    assert sentence in html.replace("&#x27;", "'")
    assert f"AP {best['ap']:.2f}" in sentence


def test_the_page_shows_the_rank_in_each_ranking(people, finished_run):
    response = client_for(people, "owner").get(run_page_url(finished_run, f"neurons/{NEURON}/"))
    ranks = {r["method"]: r for r in response.context["ranks"]}
    assert set(ranks) == {"probeless", "anova"}
    for step in finished_run.steps.filter(kind=StepKind.RANKING):
        ranking = ranking_of(step)
        i = ranking.neuron_ids.index(NeuronId.parse(NEURON))
        entry = ranks[ranking.method]
        assert entry["rank"] == ranking.rank_of()[i] + 1 and entry["of"] == len(ranking.neuron_ids)
        assert entry["per_label"] == [{"label": label, "rank": list(order).index(i) + 1}
                                      for label, order in sorted(ranking.per_label.items())]
        assert f"{entry['rank']} of {entry['of']}" in response.content.decode()
    assert ranks["anova"]["interval"] is not None  # anova ran with resamples
    assert ranks["probeless"]["interval"] is None


def test_readable_names_for_upos_labels_and_the_tag_otherwise():
    upos = ["ADP", "DET", "NOUN"]
    assert neuron_presenter.label_name("DET", upos) == "determiners (DET)"
    assert neuron_presenter.label_name("Past", ["Past", "Pres"]) == "Past"
    best = {"label": "DET", "ap": 0.934, "selectivity": 0.8, "direction": "high"}
    detection_sentence = neuron_presenter.detection_sentence
    assert detection_sentence(best, upos) == "Fires on determiners (DET): AP 0.93, selectivity 0.80"
    assert detection_sentence({**best, "direction": "low"}, upos).startswith("Fires least on determiners")
    assert detection_sentence(None, upos) is None


def reference_r(target, matrix):
    return np.array([np.corrcoef(target, matrix[:, j])[0, 1] for j in range(matrix.shape[1])])


def test_correlations_in_the_same_model_match_numpy(finished_run):
    found = neuron_presenter.find_neuron(RunView(finished_run), NEURON)
    features = neuron_presenter.selected_features(RunView(finished_run), found.model.store_key)
    matrix = features.rows(slice(None)).astype(np.float64)
    target = matrix[:, found.column]
    expected = reference_r(target, matrix)
    # small row chunks, so the pass really runs over several chunks of each layer
    r = neuron_presenter.pearson_against(target, features, chunk_bytes=4 * 32 * 50)
    np.testing.assert_allclose(r, expected, atol=1e-5)
    answer = neuron_presenter.correlated_in_model(RunView(finished_run), found)
    assert (answer["of"], answer["words"]) == (features.shape[1], features.shape[0]) and answer["seconds"] > 0
    listed = answer["neurons"]
    order = [i for i in np.argsort(-np.abs(expected), kind="stable")
             if i != found.column][:neuron_presenter.TOP_CORRELATED]
    # the same strengths in the same order (neurons with equal |r| may swap places)
    np.testing.assert_allclose([abs(c["r"]) for c in listed], np.abs(expected[order]), atol=1e-5)
    assert NEURON not in [c["neuron"] for c in listed]


def test_correlations_are_cached_by_store_and_neuron(finished_run, monkeypatch):
    found = neuron_presenter.find_neuron(RunView(finished_run), NEURON)
    first = neuron_presenter.correlated_in_model(RunView(finished_run), found)
    monkeypatch.setattr(neuron_presenter, "pearson_against", lambda *a, **k: pytest.fail("read the store again"))
    assert neuron_presenter.correlated_in_model(RunView(finished_run), found) == first
    loaded.clear()
    with pytest.raises(pytest.fail.Exception):
        neuron_presenter.correlated_in_model(RunView(finished_run), found)


def test_a_constant_column_has_no_correlation():
    from analysis.engine.features import as_features

    values = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    values[:, 1] = 2.5
    r = neuron_presenter.pearson_against(values[:, 0].astype(np.float64), as_features(values))
    assert r[0] == pytest.approx(1.0) and np.isnan(r[1])
    assert r[2] == pytest.approx(np.corrcoef(values[:, 0], values[:, 2])[0, 1], abs=1e-6)


def test_correlation_with_word_position_matches_numpy(finished_run):
    found = neuron_presenter.find_neuron(RunView(finished_run), NEURON)
    store = store_of(found.model.store_key)
    values = np.asarray(store.array("hidden", 1)[:, 3], dtype=np.float64)
    positions = np.concatenate([np.arange(1, n + 1) for n in np.diff(store.sentence_offsets)])
    result = neuron_presenter.position_correlation(found)
    assert result["r"] == pytest.approx(np.corrcoef(values, positions)[0, 1], abs=1e-9)
    assert result["n"] == store.n_words
    means = {m["position"]: m["mean"] for m in result["means"]}
    assert means["1"] == pytest.approx(values[positions == 1].mean())
    assert means["10+"] is None  # seven-word sentences


def test_the_correlations_partial_lists_neighbours_and_position(people, finished_run):
    html = client_for(people, "viewer").get(run_page_url(finished_run, f"neurons/{NEURON}/correlations/?pools=L0:1"))
    text = html.content.decode()
    assert "Most correlated neurons in tiny bert" in text
    assert "against all 96 neurons of the run's selection" in text
    assert "Correlation with word position" in text
    assert f'/projects/{finished_run.project_id}/runs/{finished_run.pk}/neurons/' in text
    assert "pools=L0%3A1" in text  # links keep the view state


def test_correlations_in_the_other_model_are_word_by_word(people, two_model_run):
    models = RunView(two_model_run).models
    assert len(models) == 2
    found = neuron_presenter.find_neuron(RunView(two_model_run), NEURON, models[0].store_key)
    [other] = neuron_presenter.correlated_in_other_models(RunView(two_model_run), found)
    assert other["model"] == models[1] and other["error"] is None
    target = np.asarray(store_of(models[0].store_key).array("hidden", 1)[:, 3], dtype=np.float64)
    theirs = neuron_presenter.selected_features(RunView(two_model_run), models[1].store_key)
    expected = reference_r(target, theirs.rows(slice(None)).astype(np.float64))
    best = np.argsort(-np.abs(expected), kind="stable")[:neuron_presenter.TOP_CORRELATED]
    np.testing.assert_allclose([abs(c["r"]) for c in other["neurons"]], np.abs(expected[best]), atol=1e-5)
    html = client_for(people, "owner").get(run_page_url(two_model_run, f"neurons/{NEURON}/correlations/"))
    assert "Most correlated neurons in tiny bert two" in html.content.decode()
    assert f"model={models[1].store_key}" in html.content.decode()
    # the other model's page of a neuron, by its store key
    response = client_for(people, "owner").get(run_page_url(two_model_run, f"neurons/{NEURON}/?model={models[1].store_key}"))
    assert response.status_code == 200 and response.context["found"].model == models[1]


@pytest.mark.parametrize("label, message", [
    ("L9:3", "L9:3 is not one of this run's neurons (hidden, layers all) in tiny bert."),
    ("L1:999", "L1:999 is not one of this run's neurons"),
    ("mlp.L1:3", "mlp.L1:3 is not one of this run's neurons"),
    ("banana", "“banana” is not a neuron label: write it as L3:117"),
])
def test_a_neuron_outside_the_run_is_a_readable_404(people, finished_run, label, message):
    for tail in (f"neurons/{label}/", f"neurons/{label}/correlations/"):
        response = client_for(people, "owner").get(run_page_url(finished_run, tail))
        assert response.status_code == 404
        text = response.content.decode().replace("&#x27;", "'")
        assert message in text
        assert "Traceback" not in text


def test_links_keep_the_view_state_and_add_to_the_pool(people, finished_run):
    ranking = finished_run.steps.filter(kind=StepKind.RANKING).first().pk
    query = f"ranking={ranking}&pools=L0:1,L2:5&page=2"
    response = client_for(people, "owner").get(run_page_url(finished_run, f"neurons/{NEURON}/?{query}"))
    html = response.content.decode()
    back = f"{run_page_url(finished_run, 'analysis/')}?ranking={ranking}&amp;pools=L0%3A1%2CL2%3A5&amp;page=2"
    assert f'href="{back}"' in html
    assert "pools=L0%3A1%2CL2%3A5%2CL1%3A3" in html  # the add-to-pool link
    in_pool = client_for(people, "owner").get(run_page_url(finished_run, f"neurons/{NEURON}/?pools={NEURON}"))
    assert "In the pool" in in_pool.content.decode()


def test_a_run_without_statistics_says_so(people, attached, django_capture_on_commit_callbacks):
    from analysis.runs import services
    from tests.support.runs import request_for

    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], {**request_for(attached), "statistics": False})
    response = client_for(people, "owner").get(run_page_url(run, f"neurons/{NEURON}/"))
    assert response.status_code == 200
    assert "This run computed no neuron statistics" in response.content.decode()
    assert len(response.context["ranks"]) == 2


def test_a_missing_store_is_a_readable_404(people, finished_run, folders):
    import shutil

    shutil.rmtree(folders["results"] / "stores" / store_key(finished_run))
    response = client_for(people, "owner").get(run_page_url(finished_run, f"neurons/{NEURON}/"))
    assert response.status_code == 404
    assert "is missing or incomplete; retry the run to rebuild it." in response.content.decode()


def test_a_run_still_computing_has_no_neuron_pages_yet(people, queued_run):
    response = client_for(people, "viewer").get(run_page_url(queued_run, f"neurons/{NEURON}/"))
    assert response.status_code == 404
    assert "This run is still computing, so it has no neuron pages yet." in response.content.decode()
