"""Linguistic correlation ranking: weight mass, global ordering, planted signal, control task."""

import numpy as np
import pytest

from analysis.engine.features import as_features
from analysis.engine.lca import (
    control_labels,
    linguistic_correlation,
    neurons_needed,
    top_neurons_at_mass,
    weight_mass_ordering,
)
from analysis.engine.ranking import Ranking

FAST = dict(epochs=10, batch_size=64, lr=5e-2, l2=1e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_weight_mass_selection_on_hand_made_weights():
    weights = np.array(
        [
            [4.0, 3.0, 2.0, 1.0, 0.0],  # class 0: cumulative 0.4, 0.7, 0.9, 1.0
            [0.0, 0.0, 1.0, 0.0, 1.0],  # class 1: units 2 and 4 tie (id breaks it)
        ]
    )
    assert neurons_needed(weights, 0.5).tolist() == [2, 1]
    assert neurons_needed(weights, 0.7).tolist() == [2, 2]  # reaching exactly 0.7 is enough
    assert neurons_needed(weights, 1.0).tolist() == [4, 2]
    assert top_neurons_at_mass(weights, 0.5).tolist() == [0, 1, 2]
    assert [p.tolist() for p in top_neurons_at_mass(weights, 0.5, per_class=True)] == [[0, 1], [2]]

    order, entry = weight_mass_ordering(weights, mass_steps=10)
    # step 1 (p=0.1): units 0 and 2 enter (max |W| 4 > 1); step 5: 1 and 4 (class 1's second half; 3 > 1);
    # step 10: unit 3 (class 0 needs it only beyond 0.9)
    assert order.tolist() == [0, 2, 1, 4, 3]
    np.testing.assert_allclose(entry, [0.0, 0.4, 0.0, 0.9, 0.5])


def test_zero_weight_neurons_go_last_by_id():
    weights = np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 0.0, 3.0]])
    order, entry = weight_mass_ordering(weights, mass_steps=100)
    assert order.tolist() == [3, 1, 0, 2]
    assert entry[0] == entry[2] == 1.0


def planted_problem(n=900, d=30, seed=0):
    """Three classes; unit 4 marks class 0, unit 11 class 1, unit 23 class 2; the rest is noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    for unit, c in ((4, 0), (11, 1), (23, 2)):
        x[labels == c, unit] += 3.0
    return x, labels


def test_planted_units_are_ranked_first_overall_and_per_label():
    x, y = planted_problem()
    ranking = linguistic_correlation(
        as_features(x), y, label_names=["A", "B", "C"], train=np.arange(700), test=np.arange(700, 900), **FAST
    )
    assert isinstance(ranking, Ranking) and ranking.method == "lca"
    assert set(ranking.order[:3].tolist()) == {4, 11, 23}
    assert sorted(ranking.order.tolist()) == list(range(30))
    # a class's sub-ranking uses |W[c]|: its own unit (positive) and the other classes' units (negative) lead
    assert all(set(ranking.per_label[label][:3].tolist()) == {4, 11, 23} for label in "ABC")
    assert ranking.metrics["test_accuracy"] > 0.9
    assert set(ranking.metrics["neurons_per_label_at_mass"]["0.1"]) == {"A", "B", "C"}
    assert Ranking.from_dict(ranking.to_dict()).order.tolist() == ranking.order.tolist()


def test_ranking_is_deterministic_under_a_seed():
    x, y = planted_problem(seed=1)
    run = lambda: linguistic_correlation(as_features(x), y, label_names=["A", "B", "C"], train=np.arange(800), seed=3, **FAST)
    a, b = run(), run()
    assert a.order.tolist() == b.order.tolist()
    np.testing.assert_array_equal(a.scores, b.scores)


def test_closed_class_needs_fewer_neurons_than_open_class_at_the_same_mass():
    # "PUNCT" (closed) is marked by one unit; "NOUN" vs "VERB" (open) differ by small shifts on 16 units
    rng = np.random.default_rng(2)
    n, d = 1500, 24
    labels = rng.integers(0, 3, n)  # 0 NOUN, 1 PUNCT, 2 VERB
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[labels == 1, 0] += 4.0
    spread = np.arange(4, 20)
    x[np.ix_(labels == 0, spread)] += 0.5
    x[np.ix_(labels == 2, spread)] -= 0.5
    ranking = linguistic_correlation(
        as_features(x), labels, label_names=["NOUN", "PUNCT", "VERB"], train=np.arange(1200), test=np.arange(1200, n),
        epochs=15, batch_size=128, lr=5e-2, l2=1e-4,
    )  # fmt: skip  (the default λ1)
    needed = ranking.metrics["neurons_per_label_at_mass"]["0.5"]
    assert needed["PUNCT"] < needed["NOUN"] and needed["PUNCT"] < needed["VERB"]
    assert ranking.per_label["PUNCT"][0] == 0


def test_the_default_finds_a_planted_unit_with_a_small_effect():
    from analysis.engine.lca import DEFAULT_L1

    rng = np.random.default_rng(7)
    n, d = 2000, 40
    labels = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[labels == 1, 17] += 0.6  # a weak signal: the two classes overlap heavily on unit 17
    ranking = linguistic_correlation(as_features(x), labels, label_names=["a", "b"], train=np.arange(1600),
                                     test=np.arange(1600, n), epochs=15, batch_size=128, lr=5e-2, l2=1e-4)
    assert ranking.params["l1"] == DEFAULT_L1
    assert ranking.order[0] == 17 and all(ranking.per_label[label][0] == 17 for label in "ab")
    assert ranking.metrics["neurons_per_label_at_mass"]["0.1"] == {"a": 1, "b": 1}


def test_lca_dense_keeps_the_published_l1_under_its_own_name():
    from analysis.engine.lca import DENSE_L1
    from analysis.engine.methods import METHODS

    assert {"lca", "lca_dense"} <= set(METHODS) and "dense" in METHODS["lca_dense"].description
    x, y = planted_problem()
    ranking = linguistic_correlation(as_features(x), y, label_names=["A", "B", "C"], train=np.arange(700),
                                     l1=DENSE_L1, method="lca_dense", **FAST)
    assert ranking.method == "lca_dense" and ranking.params["l1"] == DENSE_L1


def test_control_labels_are_fixed_per_word_type_and_follow_the_label_distribution():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in rng.integers(0, 400, 5000)]
    labels = rng.choice(3, size=5000, p=[0.7, 0.2, 0.1])
    labels[:10] = -1
    fake = control_labels(words, labels, 3, seed=5)
    assert np.all(fake[:10] == -1)
    by_type = {}
    for word, label in zip(words[10:], fake[10:]):
        assert by_type.setdefault(word, label) == label  # one label per type
    shares = np.bincount(list(by_type.values()), minlength=3) / len(by_type)
    assert shares[0] > 0.55 and shares[2] < 0.2
    assert np.array_equal(fake, control_labels(words, labels, 3, seed=5))
    assert not np.array_equal(fake, control_labels(words, labels, 3, seed=6))


def test_selectivity_is_task_minus_control_accuracy():
    # the label depends on the context unit, not the word: a control task over word types cannot reach it
    x, y = planted_problem(seed=3)
    words = [f"w{i % 50}" for i in range(len(y))]
    ranking = linguistic_correlation(
        as_features(x), y, label_names=["A", "B", "C"], train=np.arange(700), test=np.arange(700, 900),
        control=True, words=words, **FAST,
    )  # fmt: skip
    m = ranking.metrics
    assert m["selectivity"] == pytest.approx(m["test_accuracy"] - m["control_test_accuracy"])
    assert m["selectivity"] > 0.3
    with pytest.raises(ValueError, match="needs the words"):
        linguistic_correlation(as_features(x), y, label_names=["A", "B", "C"], train=np.arange(700), control=True, **FAST)
