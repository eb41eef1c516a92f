"""The Analysis view (analysis/workspace/explore/) on a run computed to the
end on a tiny BERT (probeless, anova with 2 bootstrap resamples, statistics): rankings, per-label sub-rankings,
confidence, the comparison matrix, the neuron list, the pool's round trip through the URL, the activation map's
values read back from the store, paging, search, typed-text search, the permission matrix and bad input.

Typed-text search runs here through the realtime module's own in-process path (Celery eager mode, the test
settings' default: the same ``realtime.ask`` → ``compute_activations`` code a realtime worker runs); its 503 and
504 states use the real broker with no realtime worker consuming it; test_explore_realtime.py has a real worker."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from django.core.cache import cache

from analysis import workspace
from analysis.runs import realtime
from analysis.engine.confidence import method_agreement
from analysis.models import StepKind
from analysis.workspace.explore import presenter as explore_presenter
from tests.support.clients import client_for

pytestmark = pytest.mark.django_db

NEURON_LINK = r"/neurons/([\w.]+:\d+)/"  # a link to a neuron page
PARTS = ("", "rankings/", "neurons/", "workbench/", "map/", "typed/")


@pytest.fixture(autouse=True)
def fresh_caches():
    """Each test has its own results folder under the same content keys: forget what a previous one loaded."""
    workspace.loaded.clear()
    explore_presenter._column_source.cache_clear()
    yield
    workspace.loaded.clear()
    explore_presenter._column_source.cache_clear()


def url(run, part="", query=""):
    return f"/projects/{run.project_id}/runs/{run.pk}/analysis/{part}" + (f"?{query}" if query else "")


def text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def steps(run):
    by_method = {s.params["method"]: s for s in run.steps.filter(kind=StepKind.RANKING)}
    return by_method["probeless"], by_method["anova"]


def store_of(run):
    return workspace.store_of(run.steps.get(kind=StepKind.EXTRACT).result_key)


def map_cells(html: str) -> list[tuple[str, str, str]]:
    """(word, neuron, value) of every cell of the activation maps in ``html``, in order."""
    return re.findall(r'class="map-word"[^>]*aria-label="([^"]*): ([^"]*) = ([^"]*)"', unescape(html))


# ------------------------------------------------------------------------------------------------ permissions


@pytest.mark.parametrize("who,expected", [("owner", 200), ("editor", 200), ("viewer", 200), ("stranger", 404),
                                          ("anonymous", 302)])
def test_every_page_and_partial_is_for_members(people, finished_run, who, expected):
    client = client_for(people, who)
    for part in PARTS:
        response = client.get(url(finished_run, part, "pools=L1:3"))
        assert response.status_code == expected, part
        if who == "anonymous":
            assert response["Location"].startswith("/accounts/login/")


def test_a_run_is_only_found_under_its_own_project(people, finished_run):
    from tests.factories import ProjectFactory

    elsewhere = ProjectFactory(owner=people["owner"])
    for part in PARTS:
        response = client_for(people, "owner").get(f"/projects/{elsewhere.pk}/runs/{finished_run.pk}/analysis/{part}")
        assert response.status_code == 404


# ------------------------------------------------------------------------------------------------ rankings


def test_the_rankings_are_listed_and_the_chosen_one_shows_its_top_neurons(people, finished_run):
    probeless, anova = steps(finished_run)
    html = client_for(people, "viewer").get(url(finished_run)).content.decode()
    assert f"ranking={probeless.pk}" in html and f"ranking={anova.pk}" in html
    assert "anova · 2 resamples" in html
    ranking = workspace.ranking_of(probeless)  # the first ranking is the default
    shown = re.findall(r'explore-top.*?</table>', html, re.S)[0]
    labels = re.findall(NEURON_LINK, shown)
    assert labels == [n.label for n in ranking.top(10)]
    best = ranking.order[0]
    assert f"{ranking.scores[best]:.4f}" in shown


def test_a_label_sub_ranking(people, finished_run):
    _, anova = steps(finished_run)
    html = client_for(people, "viewer").get(url(finished_run, "rankings/", f"ranking={anova.pk}&sub=NOUN")).content.decode()
    ranking = workspace.ranking_of(anova)
    labels = re.findall(NEURON_LINK, re.findall(r'explore-top.*?</table>', html, re.S)[0])
    assert labels == [ranking.neuron_ids[i].label for i in ranking.per_label["NOUN"][:10]]
    assert "Top 10 neurons for the label NOUN" in text(html)


def test_confidence_shows_rank_intervals_and_stability(people, finished_run):
    probeless, anova = steps(finished_run)
    client = client_for(people, "viewer")
    html = client.get(url(finished_run, "rankings/", f"ranking={anova.pk}")).content.decode()
    confidence = workspace.ranking_of(anova).confidence
    ranking = workspace.ranking_of(anova)
    best = ranking.order[0]
    row = re.findall(r"<tr><td>1</td>.*?</tr>", html, re.S)[0]
    assert f"{confidence['rank_low'][best] + 1}–{confidence['rank_high'][best] + 1}" in row
    assert "over 2 bootstrap resamples" in text(html)
    for key, value in confidence["stability"].items():
        assert f"<td>{key}</td><td>{confidence['k'][key]}</td><td>{value:.3f}</td>" in html
    without = client.get(url(finished_run, "rankings/", f"ranking={probeless.pk}")).content.decode()
    assert "No confidence for this ranking" in without


@pytest.mark.parametrize("k", ["10", "50", "1%"])
def test_the_comparison_matrix_holds_the_engines_jaccard(people, finished_run, k):
    probeless, anova = steps(finished_run)
    html = client_for(people, "viewer").get(url(finished_run, "rankings/", f"ranking={anova.pk}&k={k.replace('%', '%25')}"))
    html = html.content.decode()
    expected = method_agreement([workspace.ranking_of(probeless), workspace.ranking_of(anova)],
                                k=int(k) if k.isdigit() else k)
    matrix = re.findall(r'explore-matrix.*?</table>', html, re.S)[0]
    cells = re.findall(r'class="explore-cell"[^>]*>([^<]+)</td>', matrix)
    assert cells == [f"{v:.2f}" for row in expected["jaccard"] for v in row]
    assert f"Jaccard overlap of the top {expected['k']} neurons" in matrix
    assert re.findall(r'<th scope="row">([^<]+)</th>', matrix) == ["probeless", "anova · 2 resamples"]


# ------------------------------------------------------------------------------------------------ neuron list and pool


def test_the_neuron_list_filters_by_set_layer_and_label_and_pages(people, finished_run):
    _, anova = steps(finished_run)
    ranking = workspace.ranking_of(anova)
    client = client_for(people, "viewer")
    html = client.get(url(finished_run, "neurons/", f"ranking={anova.pk}&layer=1&label=VERB&npage=2")).content
    html = html.decode()
    expected = [ranking.neuron_ids[i].label for i in ranking.per_label["VERB"]
                if ranking.neuron_ids[i].layer == 1]
    listed = re.findall(NEURON_LINK, html)
    assert listed == expected[explore_presenter.NEURONS_PER_PAGE:2 * explore_presenter.NEURONS_PER_PAGE]
    assert f"{len(expected)} neurons, page 2 of 2" in text(html)
    beyond = client.get(url(finished_run, "neurons/", f"ranking={anova.pk}&npage=99")).content.decode()
    assert "Page 99 is past the last page (5); showing page 5." in text(beyond)


def test_adding_and_removing_a_neuron_round_trips_through_the_url(people, finished_run):
    _, anova = steps(finished_run)
    client = client_for(people, "viewer")
    html = unescape(client.get(url(finished_run, query=f"ranking={anova.pk}")).content.decode())
    first = workspace.ranking_of(anova).top(1)[0].label
    add = re.search(rf'id="toggle-{re.escape(first.lower().replace(":", ""))}"[^>]*hx-get="([^"]+)"', html)[1]
    response = client.get(add, HTTP_HX_REQUEST="true")
    pushed = response["HX-Push-Url"]
    assert urlsplit(pushed).path == url(finished_run)
    assert parse_qs(urlsplit(pushed).query)["pools"] == [first]
    assert parse_qs(urlsplit(pushed).query)["ranking"] == [str(anova.pk)]
    body = unescape(response.content.decode())
    assert f"Remove {first} from the pool" in text(body) and "Pool (1 of at most 50)" in text(body)
    assert {neuron for _, neuron, _ in map_cells(body)} == {first}
    # the pushed URL opens the same view
    again = unescape(client.get(pushed).content.decode())
    assert "Pool (1 of at most 50)" in text(again) and map_cells(again) == map_cells(body)
    remove = re.search(r'id="pool-remove-[^"]*"[^>]*hx-get="([^"]+)"', body)[1]
    emptied = client.get(remove, HTTP_HX_REQUEST="true")
    assert "pools" not in parse_qs(urlsplit(emptied["HX-Push-Url"]).query)
    assert "The pool is empty" in text(emptied.content.decode())


def test_the_pool_holds_at_most_the_limit(people, finished_run, monkeypatch):
    monkeypatch.setattr(explore_presenter, "POOL_LIMIT", 2)
    monkeypatch.setattr("analysis.workspace.explore.views.POOL_LIMIT", 2)
    html = client_for(people, "viewer").get(url(finished_run, "workbench/", "pools=L0:1,L0:2")).content.decode()
    assert "The pool is full (2 neurons)" in text(html) and "Add " not in text(html)


def test_unknown_neurons_in_the_pool_are_named_and_left_out(people, finished_run):
    html = client_for(people, "viewer").get(url(finished_run, query="pools=L1:3,L9:1,banana")).content.decode()
    assert "Not neurons of this ranking, left out: L9:1, banana." in text(html)
    assert {n for _, n, _ in map_cells(html)} == {"L1:3"}


# ------------------------------------------------------------------------------------------------ activation map


def test_the_map_shows_the_stores_values_one_row_per_neuron_per_sentence(people, finished_run):
    html = client_for(people, "viewer").get(url(finished_run, "map/", "pools=L1:3,L2:5&page=2")).content.decode()
    store = store_of(finished_run)
    offsets = store.sentence_offsets
    first = explore_presenter.MAP_SENTENCES  # page 2 starts at this sentence
    expected = []
    for s in range(first, first + explore_presenter.MAP_SENTENCES):
        for neuron_set, layer, unit in (("hidden", 1, 3), ("hidden", 2, 5)):
            column = store.array(neuron_set, layer)[offsets[s]:offsets[s + 1], unit]
            expected += [(w, f"L{layer}:{unit}", f"{float(v):.3g}") for w, v in zip(store.sentence(s), column)]
    assert map_cells(html) == expected
    assert f"Sentence {first + 1}" in html and "page 2 of 10" in text(html)
    assert 'tabindex="0"' in html and html.count('tabindex="0"') == explore_presenter.MAP_SENTENCES  # one stop per map


def test_the_map_colours_by_the_neurons_percentile_bound(people, finished_run):
    html = client_for(people, "viewer").get(url(finished_run, "map/", "pools=L1:3")).content.decode()
    stats = workspace.statistics_of(finished_run.steps.get(kind=StepKind.STATISTICS))
    q = stats.arrays["quantiles"][stats.position("L1:3")]
    quantiles = list(stats.params["quantiles"])
    bound = max(abs(q[quantiles.index(0.01)]), abs(q[quantiles.index(0.99)]))
    assert f"L1:3 <span class=\"muted\">±{bound:.3g}</span>" in html
    assert "the larger magnitude of its 1st and 99th percentile" in html
    colour = explore_presenter.colour
    assert colour(bound * 2, bound) == colour(bound, bound) == ("#b35806", "#ffffff")
    assert explore_presenter.colour(0.0, bound)[0] == "#f7f7f7"


def test_a_large_pool_shows_fewer_sentences_per_page(people, finished_run):
    pool = ",".join(f"L0:{u}" for u in range(30))
    html = client_for(people, "viewer").get(url(finished_run, "map/", f"pools={pool}&page=2")).content.decode()
    per_page = explore_presenter.MAP_ROWS // 30
    numbers = [int(n) for n in re.findall(r"<figcaption>Sentence (\d+)</figcaption>", html)]
    assert numbers == list(range(per_page + 1, 2 * per_page + 1))
    assert f"page 2 of {-(-40 // per_page)}" in text(html)


def test_the_map_pages_and_a_page_past_the_end_says_so(people, finished_run):
    client = client_for(people, "viewer")
    html = client.get(url(finished_run, "map/", "pools=L1:3&page=99")).content.decode()
    assert "Page 99 is past the last page (10); showing page 10." in text(html)
    assert "Sentence 40" in html and "Next sentences" not in html and "Previous sentences" in html


def test_word_search_finds_the_sentences_containing_the_word(people, finished_run):
    client = client_for(people, "viewer")
    store = store_of(finished_run)
    containing = [s for s in range(store.n_sentences) if "tea" in store.sentence(s)]
    html = client.get(url(finished_run, "map/", "pools=L1:3&q=TEA")).content.decode()
    numbers = [int(n) for n in re.findall(r"<figcaption>Sentence (\d+)</figcaption>", html)]
    assert numbers == [s + 1 for s in containing[:explore_presenter.MAP_SENTENCES]]
    assert f"{len(containing)} sentences contain “TEA”" in text(html)
    none = client.get(url(finished_run, "map/", "pools=L1:3&q=zebra")).content.decode()
    assert "No sentence contains “zebra”" in text(none)
    two = client.get(url(finished_run, "map/", "pools=L1:3&q=the+cat")).content.decode()
    assert "Search for one word" in text(two)


def test_a_missing_store_is_a_message(people, finished_run):
    import shutil

    store = store_of(finished_run)
    shutil.rmtree(store.path)
    workspace.loaded.clear()
    explore_presenter._column_source.cache_clear()
    response = client_for(people, "viewer").get(url(finished_run, "map/", "pools=L1:3"))
    assert response.status_code == 200
    assert "is missing or incomplete; retry the run to rebuild it." in text(response.content.decode())


# ------------------------------------------------------------------------------------------------ typed text


def test_typed_text_shows_the_most_active_neurons_per_word_and_the_pools_map(people, finished_run, attached):
    _, anova = steps(finished_run)
    sentence = "the cat sat on the mat ."
    response = client_for(people, "viewer").get(url(finished_run, "typed/", f"ranking={anova.pk}&pools=L1:3,L2:5&text="
                                          + sentence.replace(" ", "+")))
    html = unescape(response.content.decode())
    assert response.status_code == 200 and "z-score against the corpus statistics" in html
    answer = realtime.compute_activations(realtime.validate_activations(people["project"], {
        "model": attached["model"].pk, "sentence": sentence, "pool": ["L1:3", "L2:5"]}))
    values = np.asarray(answer["values"])
    assert map_cells(html) == [(w, n, f"{values[i, j]:.3g}") for j, n in enumerate(["L1:3", "L2:5"])
                               for i, w in enumerate(sentence.split())]
    words = re.findall(r'<tr><th scope="row">([^<]+)</th>', html)
    assert words == sentence.split()
    assert len(re.findall(r"\(z [+-]\d", html)) == explore_presenter.TYPED_TOP * len(words)
    assert parse_qs(urlsplit(response["HX-Push-Url"]).query)["text"] == [sentence]


def test_typed_text_bad_input_is_a_message(people, finished_run, settings):
    client = client_for(people, "viewer")
    settings.NEUROX_REALTIME_MAX_WORDS = 3
    html = client.get(url(finished_run, "typed/", "text=one+two+three+four")).content.decode()
    assert "The sentence has 4 words; the realtime path takes at most 3" in text(html)
    assert "Type a sentence first." in text(client.get(url(finished_run, "typed/", "text=+")).content.decode())


def test_typed_text_without_a_realtime_worker_is_a_503_message(people, finished_run, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    cache.delete(realtime._LIVE_KEY)
    html = client_for(people, "viewer").get(url(finished_run, "typed/", "text=the+cat")).content.decode()
    assert "No realtime worker is running; start one with" in text(html)


def test_typed_text_timing_out_is_a_504_message(people, finished_run, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.NEUROX_REALTIME_TIMEOUT = 0.2
    cache.set(realtime._LIVE_KEY, True)  # believed listening; nothing consumes the queue, so no answer comes
    html = client_for(people, "viewer").get(url(finished_run, "typed/", "text=the+cat")).content.decode()
    assert "The realtime worker did not answer within 0.2 s" in text(html)


# ------------------------------------------------------------------------------------------------ empty and bad input


def test_a_run_still_computing_links_to_its_progress(people, queued_run):
    html = client_for(people, "viewer").get(url(queued_run)).content.decode()
    assert "No rankings yet" in html and f"/runs/{queued_run.pk}/\">Progress</a> page" in html
    for part in PARTS[1:]:
        response = client_for(people, "viewer").get(url(queued_run, part))
        assert response.status_code == 200


def test_an_unknown_ranking_is_a_readable_404(people, finished_run):
    response = client_for(people, "viewer").get(url(finished_run, query="ranking=999999"))
    assert response.status_code == 404
    assert "Ranking 999999 is not a finished ranking of this run" in text(response.content.decode())
    partial = client_for(people, "viewer").get(url(finished_run, "neurons/", "ranking=999999"))
    assert "Ranking 999999 is not a finished ranking of this run" in text(partial.content.decode())


@pytest.mark.parametrize("query,message", [
    ("set=mlp", "This ranking has no neuron set “mlp” (it has: hidden)."),
    ("layer=7", "There is no layer 7 here (layers 0–2)."),
    ("layer=x", "The layer must be a whole number, not “x”."),
    ("label=ADJ", "This ranking has no sub-ranking for the label “ADJ”"),
    ("npage=-1", "The page must be 0 or more."),
])
def test_bad_neuron_list_filters_are_messages(people, finished_run, query, message):
    response = client_for(people, "viewer").get(url(finished_run, "neurons/", query))
    assert response.status_code == 200 and message in text(response.content.decode())


def test_a_bad_k_is_a_message(people, finished_run):
    html = client_for(people, "viewer").get(url(finished_run, "rankings/", "k=7")).content.decode()
    assert "k must be one of 1%, 10, 50." in text(html)


def test_a_run_that_failed_before_any_ranking_says_why(people, queued_run):
    from analysis.models import Run, RunState

    Run.objects.filter(pk=queued_run.pk).update(state=RunState.FAILED, error="The corpus has no labels.")
    html = text(client_for(people, "viewer").get(url(queued_run)).content.decode())
    assert "This run failed before any ranking finished: The corpus has no labels." in html
