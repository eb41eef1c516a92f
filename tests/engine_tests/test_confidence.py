import json

import numpy as np
import pytest

from analysis.engine.baselines import variance_ranking
from analysis.engine.confidence import (bootstrap_confidence, mean_pairwise_jaccard, method_agreement,
                                        resolve_k, sentence_resample)
from analysis.engine.features import as_features
from analysis.engine.neurons import layer_neurons
from analysis.engine.probeless import probeless_ranking
from analysis.engine.univariate import anova_ranking

LABELS = ["A", "B", "C"]


def corpus(signal: bool, n_sentences=120, d=200, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, n_sentences)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = int(offsets[-1])
    labels = rng.integers(0, 3, n).astype(np.int32)
    x = rng.normal(size=(n, d)).astype(np.float32)
    if signal:
        x[:, :10] += (3.0 + np.arange(10)[None, :]) * labels[:, None]  # distinct strengths: a stable order
    return as_features(x), labels, offsets


def test_sentence_resample_draws_whole_sentences_with_repeats():
    offsets = np.array([0, 3, 5, 9])
    rows = sentence_resample(offsets, np.random.default_rng(1))
    # the rows are whole sentences one after another: each draw gives all its words, in order
    draws, i = [], 0
    while i < len(rows):
        s = int(np.searchsorted(offsets, rows[i], side="right") - 1)
        words = np.arange(offsets[s], offsets[s + 1])
        np.testing.assert_array_equal(rows[i : i + len(words)], words)
        draws.append(s)
        i += len(words)
    assert len(draws) == len(offsets) - 1 and len(set(draws)) < len(draws)  # as many draws as sentences, repeats
    again = sentence_resample(offsets, np.random.default_rng(1))
    np.testing.assert_array_equal(rows, again)


def test_planted_signal_gives_narrow_intervals_and_stable_top_k():
    features, labels, offsets = corpus(signal=True)
    ranking = bootstrap_confidence(lambda rows: anova_ranking(features, labels, LABELS, rows=rows), offsets,
                                   n_boot=10, ks=(10, 50, "1%"))
    conf = ranking.confidence
    assert conf["k"] == {"10": 10, "50": 50, "1%": 2}
    assert conf["stability"]["10"] == pytest.approx(1.0)
    assert conf["stability"]["1%"] == pytest.approx(1.0)
    assert conf["stability"]["50"] < 0.6  # beyond the planted units the order is noise
    low, high = np.array(conf["rank_low"]), np.array(conf["rank_high"])
    assert (high[:10] - low[:10]).max() <= 1 and (high[9] == 0)
    assert (high[10:] - low[10:]).mean() > 50
    json.dumps(ranking.to_dict())  # stored as JSON


def test_pure_noise_gives_low_stability_and_is_seeded():
    features, labels, offsets = corpus(signal=False)
    rank = lambda rows: probeless_ranking(features, labels, LABELS, rows=rows)  # noqa: E731
    first = bootstrap_confidence(rank, offsets, n_boot=8, seed=4).confidence
    second = bootstrap_confidence(rank, offsets, n_boot=8, seed=4).confidence
    assert first == second
    assert first["stability"]["10"] < 0.3


def test_restricted_sentence_pool_and_checks():
    features, labels, offsets = corpus(signal=True, n_sentences=40)
    seen = []

    def rank(rows):
        seen.append(rows)
        return variance_ranking(features, rows=rows)

    bootstrap_confidence(rank, offsets, n_boot=3, sentences=np.arange(10))
    assert all(r.max() < offsets[10] for r in seen)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_confidence(rank, offsets, n_boot=1)
    with pytest.raises(ValueError, match="percentage"):
        resolve_k("ten", 100)


def test_mean_pairwise_jaccard():
    tops = np.array([[0, 1], [0, 2], [0, 1]])
    # pairs: {0,1}/{0,2} = 1/3, {0,1}/{0,1} = 1, {0,2}/{0,1} = 1/3
    assert mean_pairwise_jaccard(tops) == pytest.approx(5 / 9)


def test_agreement_between_methods_on_planted_data():
    features, labels, offsets = corpus(signal=True)
    anova = anova_ranking(features, labels, LABELS)
    probeless = probeless_ranking(features, labels, LABELS)
    noise = variance_ranking(as_features(np.random.default_rng(9).normal(size=features.shape)))
    table = method_agreement([anova, probeless, noise], k=10)
    assert table["methods"] == ["anova", "probeless", "variance"]
    assert table["jaccard"][0][1] > 0.6 and table["kendall_tau"][0][1] > 0.6
    assert table["jaccard"][0][2] < 0.3
    json.dumps(table)
    with pytest.raises(ValueError, match="different neurons"):
        method_agreement([anova, variance_ranking(as_features(np.zeros((5, 3))))], k=2)


# ---- consensus ------------------------------------------------------------------------------------------------


def _one_unstable_unit(rows):
    """Units 0-4 always carry the signal; unit 5 tops a resample only when sentence 0 is drawn twice or more."""
    from analysis.engine.ranking import ranking_from_scores

    rng = np.random.default_rng(int(rows.sum()) % 2**32)
    scores = rng.normal(size=20)
    scores[:5] += 10
    scores[5] = 20.0 if np.sum(rows == 0) >= 2 else 0.0
    return ranking_from_scores("fake", layer_neurons("hidden", 0, 20), scores)


@pytest.mark.parametrize("how", ["mean_rank", "selection_frequency"])
def test_consensus_drops_a_unit_that_tops_only_some_resamples(how):
    from analysis.engine.ranking import ranking_from_scores

    offsets = np.arange(0, 101)  # 100 one-word sentences
    scores = np.zeros(20)
    scores[:6] = [5, 4, 3, 2, 1, 9]  # the full-data ranking happens to put the unstable unit first
    full = ranking_from_scores("fake", layer_neurons("hidden", 0, 20), scores)
    ranking = bootstrap_confidence(_one_unstable_unit, offsets, n_boot=40, ks=(5,), ranking=full, consensus=how,
                                   consensus_k=5)
    plain_top = ranking.confidence["consensus"]["full_data_order"][:5]
    assert 5 in plain_top
    assert set(ranking.order[:5].tolist()) == {0, 1, 2, 3, 4}
    assert ranking.params["consensus"] == how
    assert ranking.confidence["consensus"]["stability"]["5"] == 1.0
    assert ranking.confidence["stability"]["5"] < 0.9  # single resamples disagree about unit 5


def test_consensus_checks_its_arguments():
    from analysis.engine.methods import compute_ranking

    offsets = np.arange(0, 11)
    with pytest.raises(ValueError, match="one of mean_rank, selection_frequency"):
        bootstrap_confidence(_one_unstable_unit, offsets, n_boot=4, consensus="vote")
    with pytest.raises(ValueError, match="at least 4 bootstrap resamples"):
        bootstrap_confidence(_one_unstable_unit, offsets, n_boot=3, consensus="mean_rank")
    with pytest.raises(ValueError, match="pass bootstrap=4 or more"):
        compute_ranking(None, "lca", bootstrap=0, consensus="mean_rank")
