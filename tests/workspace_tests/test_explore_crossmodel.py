"""The Analysis view of a run over two models with a cross-model ranking (maxcorr) and a probeless ranking per
model: each model's cross-model ranking is its own choice (``of=``), it is compared with that model's probeless
ranking only, and the map reads that model's store."""

from __future__ import annotations

import re
from html import unescape

import pytest

from analysis import workspace
from analysis.runs import services
from analysis.engine.confidence import method_agreement
from analysis.models import RunState, StepKind
from analysis.workspace.explore import presenter as explore_presenter
from tests.support.clients import client_for
from tests.support.runs import request_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_caches():
    workspace.loaded.clear()
    explore_presenter._column_source.cache_clear()
    yield
    workspace.loaded.clear()
    explore_presenter._column_source.cache_clear()


@pytest.fixture
def crossmodel_run(people, two_berts, django_capture_on_commit_callbacks):
    request = request_for(two_berts, models=[two_berts["model"].pk, two_berts["second"].pk],
                          rankings=[{"method": "probeless", "bootstrap": 0}], statistics=False,
                          crossmodel=[{"method": "maxcorr"}])
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request)
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    return run


def probeless_pk(run) -> int:
    return run.steps.filter(kind=StepKind.RANKING).first().pk


def test_each_models_crossmodel_ranking_is_shown_and_compared_with_that_models_rankings(people, crossmodel_run):
    client = client_for(people, "viewer")
    cross = crossmodel_run.steps.get(kind=StepKind.CROSSMODEL)
    second_key = cross.params["store_keys"][1]
    base = f"/projects/{crossmodel_run.project_id}/runs/{crossmodel_run.pk}/analysis/"
    html = unescape(client.get(base).content.decode())
    assert "cross-model maxcorr · tiny bert" in html and "probeless · tiny bert 2" in html
    assert f"ranking={cross.pk}&of=1" in html
    page = unescape(client.get(f"{base}rankings/?ranking={cross.pk}&of=1&k=10").content.decode())
    assert 'data-role="crossmodel-caveat"' in page and "not what it encodes" in page  # said beside the ranking
    own = unescape(client.get(f"{base}rankings/?ranking={probeless_pk(crossmodel_run)}").content.decode())
    assert "crossmodel-caveat" not in own
    ranking = workspace.ranking_of(cross)[second_key]
    probeless = crossmodel_run.steps.get(kind=StepKind.RANKING, params__store_key=second_key)
    expected = method_agreement([workspace.ranking_of(probeless), ranking], k=10)["jaccard"]
    matrix = re.findall(r"explore-matrix.*?</table>", page, re.S)[0]
    assert re.findall(r'<th scope="row">([^<]+)</th>', matrix) == ["probeless · tiny bert 2",
                                                                     "cross-model maxcorr · tiny bert 2"]
    assert re.findall(r'class="explore-cell"[^>]*>([^<]+)</td>', matrix) == [f"{v:.2f}" for r in expected
                                                                              for v in r]
    shown = re.findall(r"/neurons/([\w.]+:\d+)/", re.findall(r"explore-top.*?</table>", page, re.S)[0])
    assert shown == [n.label for n in ranking.top(10)]
    # the map reads the second model's store
    mapped = unescape(client.get(f"{base}map/?ranking={cross.pk}&of=1&pools=L1:3").content.decode())
    store = workspace.store_of(second_key)
    words = store.sentence(0)
    column = store.array("hidden", 1)[: len(words), 3]
    cells = re.findall(r'aria-label="([^"]*): L1:3 = ([^"]*)"', mapped)[: len(words)]
    assert cells == [(w, f"{float(v):.3g}") for w, v in zip(words, column)]
    assert "Ranking" in client.get(f"{base}?ranking={cross.pk}&of=5").content.decode()
    assert client.get(f"{base}?ranking={cross.pk}&of=5").status_code == 404
