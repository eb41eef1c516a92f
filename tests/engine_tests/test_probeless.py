import itertools

import numpy as np

from analysis.engine.features import as_features
from analysis.engine.probeless import pairwise_mean_distance, probeless_ranking

LABELS = ["ADJ", "DET", "NOUN", "VERB"]


def planted(n=1500, d=30, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(LABELS), n).astype(np.int32)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, 7] += 3.0 * labels
    x[:, 21] += np.where(labels == 1, 6.0, 0.0)  # separates DET only
    return x, labels


def test_pairwise_distance_matches_the_definition():
    means = np.random.default_rng(1).normal(size=(5, 7))
    expected = sum(np.abs(means[a] - means[b]) for a, b in itertools.combinations(range(5), 2))
    np.testing.assert_allclose(pairwise_mean_distance(means), expected)


def test_scores_match_class_means_computed_directly():
    x, labels = planted(n=400)
    labels[:20] = -1
    ranking = probeless_ranking(as_features(x), labels, LABELS, batch_size=64, standardise=False)
    means = np.stack([x[labels == c].astype(np.float64).mean(0) for c in range(4)])
    expected = sum(np.abs(means[a] - means[b]) for a, b in itertools.combinations(range(4), 2))
    np.testing.assert_allclose(ranking.scores, expected, rtol=1e-6)
    det = np.abs(means - means[1]).sum(0)
    np.testing.assert_array_equal(ranking.per_label["DET"], np.lexsort((np.arange(30), -det)))


def test_planted_units_rank_first_overall_and_per_label():
    x, labels = planted()
    ranking = probeless_ranking(as_features(x), labels, LABELS)
    assert set(ranking.order[:2]) == {7, 21}
    assert ranking.per_label["DET"][0] == 21
    assert ranking.per_label["VERB"][0] == 7
    assert ranking.params["labels_present"] == LABELS


def test_absent_label_is_left_out():
    x, labels = planted(n=300)
    labels[labels == 0] = 2
    ranking = probeless_ranking(as_features(x), labels, LABELS)
    assert "ADJ" not in ranking.per_label
    assert set(ranking.order[:2]) == {7, 21}


def small_scale_planted(n=2000, d=40, seed=2):
    """Units 3 and 17 carry the labels but on a 0.01 scale; every other unit is unit-variance noise, and a few
    noise units are much wider (the scale that raw class-mean differences follow)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(LABELS), n).astype(np.int32)
    x = rng.normal(size=(n, d))
    x[:, :3] *= 20.0
    x[:, 3] = 0.01 * (rng.normal(size=n) + 2.0 * labels)
    x[:, 17] = 0.01 * (rng.normal(size=n) + np.where(labels == 1, 4.0, 0.0))
    return x.astype(np.float32), labels


def test_standardised_variants_rank_small_scale_planted_units_first_and_raw_ones_do_not():
    from analysis.engine.baselines import mean_difference_ranking

    x, labels = small_scale_planted()
    features = as_features(x)
    for rank in (probeless_ranking, mean_difference_ranking):
        standardised = rank(features, labels, LABELS)
        raw = rank(features, labels, LABELS, standardise=False)
        assert set(standardised.order[:2]) == {3, 17}, rank.__name__
        assert standardised.per_label["DET"][0] == 17
        assert not {3, 17} & set(raw.order[:2])
        assert standardised.params["activations"] == "standardised" and raw.params["activations"] == "raw"
    assert probeless_ranking(features, labels, LABELS, standardise=False).method == "probeless_raw"


def test_standardised_scores_are_raw_scores_over_the_std_and_zero_for_a_constant_unit():
    x, labels = planted(n=400)
    x[:, 4] = 2.5
    raw = probeless_ranking(as_features(x), labels, LABELS, standardise=False)
    standardised = probeless_ranking(as_features(x), labels, LABELS)
    std = x.astype(np.float64).std(0)
    keep = std > 0
    np.testing.assert_allclose(standardised.scores[keep], raw.scores[keep] / std[keep], rtol=1e-5)
    assert standardised.scores[4] == 0.0
