import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from analysis.engine.baselines import (average_precision_columns, binary_concept_ranking,
                                       mean_difference_ranking, variance_ranking)
from analysis.engine.features import as_features

LABELS = ["ADJ", "DET", "NOUN", "VERB"]


def planted(n=1200, d=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(LABELS), n).astype(np.int32)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, 4] += 3.0 * (labels == 1)  # fires for DET
    x[:, 9] -= 2.5 * (labels == 1)  # silent for DET: negative direction
    return x, labels


def test_average_precision_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=(300, 6)), 1).astype(np.float32)  # many ties
    positive = rng.random(300) < 0.3
    ours = average_precision_columns(values, positive)
    expected = [average_precision_score(positive, values[:, j]) for j in range(6)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    high, low = average_precision_columns(values, positive, both_directions=True)
    np.testing.assert_array_equal(high, ours)
    np.testing.assert_allclose(low, [average_precision_score(positive, -values[:, j]) for j in range(6)], rtol=1e-12)


def test_binary_concept_finds_both_directions_without_mutating_input():
    x, labels = planted()
    before = x.copy()
    ranking = binary_concept_ranking(as_features(x), "DET", labels, LABELS, max_bytes=200_000)
    np.testing.assert_array_equal(x, before)
    assert set(ranking.order[:2]) == {4, 9}
    assert ranking.params["sign"][4] == 1 and ranking.params["sign"][9] == -1
    assert ranking.scores[4] > 0.8 and ranking.params["chance_ap"] < 0.35
    expected = average_precision_score(labels == 1, -x[:, 9])
    assert ranking.scores[9] == pytest.approx(expected)


def test_binary_concept_from_a_mask_and_repeated_rows():
    x, labels = planted()
    mask = labels == 1
    rows = np.concatenate([np.arange(600), np.arange(50)])
    ranking = binary_concept_ranking(as_features(x), mask, rows=rows)
    assert ranking.scores[4] == pytest.approx(average_precision_score(mask[rows], x[rows, 4]))
    with pytest.raises(ValueError, match="both positive and negative"):
        binary_concept_ranking(as_features(x), np.zeros(len(x), bool))
    with pytest.raises(ValueError, match="unknown label"):
        binary_concept_ranking(as_features(x), "PRON", labels, LABELS)


def test_variance_baseline():
    x, _ = planted()
    x[:, 13] *= 5
    x[:, 2] += 1e4  # offset does not matter
    ranking = variance_ranking(as_features(x))
    np.testing.assert_allclose(ranking.scores, x.astype(np.float64).var(0), rtol=1e-4)
    assert ranking.order[0] == 13


def test_mean_difference_baseline_finds_planted():
    x, labels = planted()
    ranking = mean_difference_ranking(as_features(x), labels, LABELS)
    assert set(ranking.order[:2]) == {4, 9}
    assert set(ranking.per_label["DET"][:2]) == {4, 9}
    overall = x.astype(np.float64).mean(0)
    det = np.abs(x[labels == 1].astype(np.float64).mean(0) - overall)
    np.testing.assert_array_equal(ranking.per_label["DET"], np.lexsort((np.arange(20), -det)))
