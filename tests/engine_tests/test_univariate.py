import numpy as np
import pytest
from sklearn.feature_selection import f_classif

from analysis.engine.features import Features, as_features
from analysis.engine.neurons import layer_neurons
from analysis.engine.moments import class_moments
from analysis.engine.univariate import anova_ranking, mutual_info_ranking

LABELS = ["ADJ", "DET", "NOUN", "VERB"]
PLANTED = [5, 12, 30]


def planted(n=1500, d=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(LABELS), n).astype(np.int32)
    x = rng.normal(size=(n, d)).astype(np.float32)
    for strength, unit in zip((3.0, 2.0, 1.5), [u for u in PLANTED if u < d]):
        x[:, unit] += strength * labels
    return x, labels


def test_f_statistic_equals_sklearn_including_missing_labels_and_batches():
    x, labels = planted(n=600, d=12)
    x[:, 3] += 1000.0  # large offset: streamed sums must not cancel
    labels[::7] = -1
    ranking = anova_ranking(as_features(x), labels, LABELS, batch_size=50)
    keep = labels >= 0
    expected, _ = f_classif(x[keep].astype(np.float64), labels[keep])
    np.testing.assert_allclose(ranking.scores, expected, rtol=1e-6)
    # per-label one-vs-rest F
    for i, name in enumerate(LABELS):
        one_vs_rest, _ = f_classif(x[keep].astype(np.float64), labels[keep] == i)
        np.testing.assert_array_equal(ranking.per_label[name][:3], np.argsort(-one_vs_rest, kind="stable")[:3])


def test_planted_units_rank_first_and_constant_neurons_last():
    x, labels = planted()
    x[:, 0] = 2.5  # constant neuron: F is NaN
    ranking = anova_ranking(as_features(x), labels, LABELS)
    assert list(ranking.order[:3]) == PLANTED
    assert ranking.order[-1] == 0 and np.isnan(ranking.scores[0])
    assert ranking.top(1)[0].label == "L0:5"
    assert set(ranking.per_label) == set(LABELS)
    assert set(ranking.per_label["VERB"][:3]) == set(PLANTED)


def test_training_rows_only_and_repeated_rows():
    x, labels = planted()
    train = np.arange(1000)
    ranking = anova_ranking(as_features(x), labels, LABELS, rows=train)
    expected, _ = f_classif(x[train].astype(np.float64), labels[train])
    np.testing.assert_allclose(ranking.scores, expected, rtol=1e-6)
    repeated = np.concatenate([train, train[:10]])
    with_repeats = anova_ranking(as_features(x), labels, LABELS, rows=repeated)
    expected_rep, _ = f_classif(x[repeated].astype(np.float64), labels[repeated])
    np.testing.assert_allclose(with_repeats.scores, expected_rep, rtol=1e-6)


def test_float16_blocks_over_two_layers():
    x, labels = planted()
    half = x.astype(np.float16)
    features = Features([half[:, :20], half[:, 20:]], layer_neurons("hidden", 1, 20) + layer_neurons("hidden", 2, 20))
    ranking = anova_ranking(features, labels, LABELS)
    assert [n.label for n in ranking.top(3)] == ["L1:5", "L1:12", "L2:10"]


def test_class_moments_counts_and_means():
    x, labels = planted(n=200, d=5)
    moments = class_moments(as_features(x), labels.astype(np.int64), len(LABELS), np.arange(len(labels)))
    assert moments.counts.tolist() == np.bincount(labels, minlength=4).tolist()
    np.testing.assert_allclose(moments.means()[2], x[labels == 2].mean(0), rtol=1e-5, atol=1e-6)


def test_mutual_information_option_is_seeded_and_finds_planted():
    x, labels = planted(n=600, d=15)
    first = mutual_info_ranking(as_features(x), labels, LABELS, seed=3, per_label=False)
    second = mutual_info_ranking(as_features(x), labels, LABELS, seed=3, per_label=False)
    assert first.method == "mutual_info" and set(first.order[:2]) == {5, 12}
    np.testing.assert_array_equal(first.scores, second.scores)


def test_binned_mutual_information_matches_the_contingency_table_by_hand():
    from analysis.engine.univariate import binned_mutual_information

    values = np.array([[0.0], [0.0], [1.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    ids = np.array([0, 0, 1, 1, 1, 0])
    overall, per = binned_mutual_information(values, ids, 2, n_bins=2, labels_vs_rest=[1])
    # median edge 1.0, side right: bins [0, 0, 1, 1, 1, 1]; table [[2, 0], [1, 3]] over 6 words
    table = np.array([[2, 0], [1, 3]]) / 6
    expected = sum(p * np.log(p / (table.sum(1)[b] * table.sum(0)[c]))
                   for (b, c), p in np.ndenumerate(table) if p > 0)
    assert overall[0] == pytest.approx(expected)
    assert per[1][0] == pytest.approx(expected)  # two labels: label 1 vs rest is the same table
    constant, _ = binned_mutual_information(np.ones((6, 1), np.float32), ids, 2)
    assert constant[0] == 0.0


def test_mutual_information_finds_a_nonlinear_signal_that_the_mean_misses_and_per_label_winners():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, len(LABELS), 3000).astype(np.int32)
    x = rng.normal(size=(3000, 20)).astype(np.float32)
    x[:, 9] = np.where(labels == 2, rng.choice([-3.0, 3.0], 3000), 0.0) + 0.3 * rng.normal(size=3000)  # NOUN: |x|
    x[:, 4] += 2.5 * (labels == 1)  # DET
    ranking = mutual_info_ranking(as_features(x), labels, LABELS, block_units=3)
    assert set(ranking.order[:2]) == {4, 9}
    assert ranking.per_label["NOUN"][0] == 9 and ranking.per_label["DET"][0] == 4
    assert ranking.params["estimator"].startswith("quantile-binned")


def test_bad_labels_are_refused_with_clear_messages():
    x, labels = planted(n=50, d=4)
    with pytest.raises(ValueError, match="one id per word"):
        anova_ranking(as_features(x), labels[:-1], LABELS)
    with pytest.raises(ValueError, match=r"label ids must lie in \[-1, 4\)"):
        anova_ranking(as_features(x), labels + 5, LABELS)
    with pytest.raises(ValueError, match="label names must be distinct; repeated: DET"):
        anova_ranking(as_features(x), labels, ["ADJ", "DET", "DET", "VERB"])
    with pytest.raises(ValueError, match="no labelled words"):
        anova_ranking(as_features(x), np.full(50, -1, np.int32), LABELS)
