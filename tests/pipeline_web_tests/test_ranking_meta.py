"""What the results API says about a finished single-model ranking: its ``meta`` counts the neurons the ranking
covers (it read a key the ranking's JSON does not have, and said 0 for every ranking)."""

from __future__ import annotations

import pytest

from analysis.models import StepKind
from tests.support.clients import api_client_for

pytestmark = pytest.mark.django_db


def test_a_finished_rankings_meta_counts_its_neurons(people, finished_run):
    results = api_client_for(people, "viewer").get(f"/api/v1/runs/{finished_run.pk}/results/").json()
    rankings = [r for r in results if r["kind"] == StepKind.RANKING]
    assert {r["meta"]["method"] for r in rankings} == {"probeless", "anova"}
    for ranking in rankings:
        # the tiny BERT's hidden set: 32 units in each of the embeddings and its 2 layers
        assert ranking["meta"]["neurons"] == len(ranking["data"]["neurons"]) == len(ranking["data"]["order"]) == 96
