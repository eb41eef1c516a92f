import json

import numpy as np
import pytest

from analysis.engine.features import Features, as_features
from analysis.engine.neurons import layer_neurons
from analysis.engine.features import column_blocks
from analysis.engine.stats import NeuronStats, compute_neuron_stats


def test_top_words_formula_on_a_hand_made_example():
    words = ["the", "cat", "the", "dog", "cat", "the"]
    values = np.array([[1.0], [2.0], [1.0], [5.0], [3.0], [0.0]], dtype=np.float32)
    stats = compute_neuron_stats(as_features(values), words=words, sentence_offsets=[0, 3, 6])
    page = stats.for_neuron("L0:0")
    # mean 2, population std sqrt(16/6); score = sum(z) / (count + 4)
    sigma = np.sqrt(16 / 6)
    expected = [("dog", 3 / sigma / 5, 1), ("the", -4 / sigma / 7, 3), ("cat", 1 / sigma / 6, 2)]
    assert [w["word"] for w in page["top_words"]] == [e[0] for e in expected]
    for got, (_, score, count) in zip(page["top_words"], expected):
        assert got["score"] == pytest.approx(score, rel=1e-5) and got["count"] == count
    assert page["mean"] == pytest.approx(2.0) and page["std"] == pytest.approx(sigma)
    highest = page["top_contexts"]["highest"][0]
    assert (highest["value"], highest["sentence"], highest["position"], highest["word"]) == (5.0, 1, 0, "dog")
    lowest = page["top_contexts"]["lowest"][0]
    assert (lowest["sentence"], lowest["position"], lowest["word"]) == (1, 2, "the")


def planted(n=900, seed=0):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(rng.integers(2, 9, 200))])
    offsets = offsets[offsets <= n]
    offsets = np.append(offsets, n) if offsets[-1] != n else offsets
    vocabulary = [f"w{i}" for i in range(40)]
    type_ids = rng.integers(0, 40, n)
    words = [vocabulary[t] for t in type_ids]
    labels = (type_ids % 3).astype(np.int32)
    labels[::11] = -1
    x = rng.normal(size=(n, 12)).astype(np.float32)
    x[:, 2] += 4.0 * (type_ids == 7)  # w7 fires unit 2
    x[:, 5] -= 4.0 * (type_ids == 9)  # w9 silences unit 5
    x[:, 8] = 3.0  # constant
    return x, words, labels, offsets


def test_statistics_match_numpy_and_are_independent_of_block_size():
    x, words, labels, offsets = planted()
    features = Features([x[:, :5].astype(np.float16), x[:, 5:].astype(np.float16)],
                        layer_neurons("hidden", 0, 5) + layer_neurons("mlp", 0, 7))
    values = x.astype(np.float16).astype(np.float64)
    big = compute_neuron_stats(features, words, offsets, labels, ["A", "B", "C"])
    small = compute_neuron_stats(features, words, offsets, labels, ["A", "B", "C"], max_bytes=30_000)
    for key in big.arrays:
        np.testing.assert_allclose(big.arrays[key], small.arrays[key], rtol=1e-6, err_msg=key)
    a = big.arrays
    np.testing.assert_allclose(a["mean"], values.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a["std"], values.std(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a["quantiles"], np.quantile(values, big.params["quantiles"], axis=0).T, rtol=1e-3)
    counts, _ = np.histogram(values[:, 3], bins=32, range=(values[:, 3].min(), values[:, 3].max()))
    np.testing.assert_array_equal(a["histogram"][3], counts)
    assert a["histogram"].sum(1).tolist() == [len(x)] * 12
    np.testing.assert_allclose(a["label_means"][0, 1], values[labels == 1, 0].mean(), rtol=1e-5)

    assert big.for_neuron("L0:2")["top_words"][0]["word"] == "w7"
    first = big.for_neuron("mlp.L0:0")["top_words"][0]
    assert first["word"] == "w9" and first["score"] < 0
    assert big.for_neuron("mlp.L0:3")["top_words"] == []  # constant neuron
    high = big.for_neuron(2, words=words, window=2)["top_contexts"]["highest"]
    assert len(high) == 10 and high[0]["value"] >= high[-1]["value"]
    row = high[0]["row"]
    assert offsets[high[0]["sentence"]] + high[0]["position"] == row
    assert high[0]["left"] == words[max(offsets[high[0]["sentence"]], row - 2):row]


def test_blocks_computed_on_several_threads_give_the_same_statistics_and_progress_in_order():
    x, words, labels, offsets = planted()
    features = Features([x[:, :5].astype(np.float16), x[:, 5:].astype(np.float16)],
                        layer_neurons("hidden", 0, 5) + layer_neurons("mlp", 0, 7))

    class Progress:
        def __init__(self):
            self.done = []

        def progress(self, done, total, unit):
            self.done.append(done)

        def log(self, text):
            pass

        def check_cancelled(self):
            pass

    one, three = Progress(), Progress()
    alone = compute_neuron_stats(features, words, offsets, labels, ["A", "B", "C"], max_bytes=30_000, threads=1,
                                 job=one)
    shared = compute_neuron_stats(features, words, offsets, labels, ["A", "B", "C"], max_bytes=90_000, threads=3,
                                  job=three)
    for key in alone.arrays:
        np.testing.assert_array_equal(alone.arrays[key], shared.arrays[key], err_msg=key)
    assert len(three.done) > 1 and three.done == sorted(three.done) and three.done[-1] == 12
    assert one.done[-1] == 12


def test_save_and_load_round_trip_without_pickle(tmp_path):
    x, words, labels, offsets = planted(n=300)
    stats = compute_neuron_stats(as_features(x), words, offsets, labels, ["A", "B", "C"])
    npz, meta = stats.save(tmp_path / "stats")
    assert npz.name == "stats.npz" and meta.name == "stats.json"
    loaded = NeuronStats.load(tmp_path / "stats.npz")
    for i in range(12):
        assert loaded.for_neuron(i) == stats.for_neuron(i)
    page = json.dumps(loaded.for_neuron("L0:2"))
    assert len(page) < 10_000
    with pytest.raises(KeyError, match="no statistics"):
        loaded.for_neuron("L5:0")


def test_column_blocks_follow_row_order_with_repeats():
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    rows = np.array([7, 2, 2, 9])
    blocks = list(column_blocks(as_features(x), rows, max_bytes=2 * 4 * len(rows)))
    assert [(s, e) for s, e, _ in blocks] == [(0, 2), (2, 4)]
    np.testing.assert_array_equal(np.concatenate([b for _, _, b in blocks], 1), x[rows])


def test_bad_inputs():
    x = np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match="sentence_offsets"):
        compute_neuron_stats(as_features(x), sentence_offsets=[0, 3])
    with pytest.raises(ValueError, match="words for 5"):
        compute_neuron_stats(as_features(x), words=["a"])


def test_best_label_sampled_contexts_and_selectivity_on_a_planted_store(tmp_path):
    from sklearn.metrics import average_precision_score

    from tests.support.planted_store import SIGNAL_UNIT, planted_store

    store = planted_store(tmp_path / "s", n_sentences=100)
    stats = compute_neuron_stats(store.features(), store.words, store.sentence_offsets, store.labels,
                                 store.label_names)
    values = store.features().rows(slice(None)).astype(np.float64)
    for name in store.label_names:
        page = stats.for_neuron(f"L1:{SIGNAL_UNIT[name]}", words=store.words)
        best = page["best_label"]
        assert best["label"] == name and best["direction"] == "high" and best["selectivity"] > 2
        column = values[:, 10 + SIGNAL_UNIT[name]]
        truth = store.labels == store.label_names.index(name)
        assert best["ap"] == pytest.approx(average_precision_score(truth, column), rel=1e-6)
        assert best["ap"] > 0.8
    noise = stats.for_neuron("L0:3")["best_label"]
    assert noise["ap"] < 0.45 and abs(noise["selectivity"]) < 0.5

    sampled = stats.for_neuron("L1:3", words=store.words)["sampled_contexts"]
    assert [b["bin"] for b in sampled] == list(range(8)) and all(len(b["contexts"]) == 3 for b in sampled)
    flat = [c["value"] for b in sampled for c in b["contexts"]]
    assert flat == sorted(flat)
    column = values[:, 13]
    assert flat[0] <= np.quantile(column, 1 / 8) and flat[-1] >= np.quantile(column, 7 / 8)
    assert all(store.words[c["row"]] == c["word"] for b in sampled for c in b["contexts"])


def test_a_low_firing_detector_is_scored_on_its_negated_activation_and_float32_input_gives_the_same():
    x, words, labels, offsets = planted()
    x[:, 4] -= 3.0 * (labels == 2)
    x = x.astype(np.float16).astype(np.float32)
    names = ["A", "B", "C"]
    page = compute_neuron_stats(as_features(x), words, offsets, labels, names).for_neuron(4)
    assert page["best_label"]["label"] == "C" and page["best_label"]["direction"] == "low"
    assert page["best_label"]["selectivity"] < -2 and page["best_label"]["ap"] > 0.9
    half = compute_neuron_stats(as_features(x.astype(np.float16)), words, offsets, labels, names)
    full = compute_neuron_stats(as_features(x + np.float32(1e-4)), words, offsets, labels, names)  # not float16
    assert half.for_neuron(4)["best_label"]["label"] == full.for_neuron(4)["best_label"]["label"]
    np.testing.assert_array_equal(half.arrays["low_rows"], compute_neuron_stats(
        as_features(x), words, offsets, labels, names).arrays["low_rows"])


def test_average_precision_equals_scikit_learn_with_ties_in_both_directions():
    from sklearn.metrics import average_precision_score

    from analysis.engine.stats import average_precision_from_sorted, sort_keys, sorted_columns

    rng = np.random.default_rng(3)
    for trial in range(20):
        n = int(rng.integers(5, 400))
        values = np.round(rng.normal(size=n) * rng.choice([1, 4, 20])) / 4  # few distinct values: many ties
        values = values.astype(np.float16)
        positive = rng.random(n) < rng.uniform(0.05, 0.6)
        positive[rng.integers(n)] = True
        keys = sort_keys(values[:, None])
        _, everyone = sorted_columns(keys)
        positives = np.sort(keys[0, positive])
        for high, score in ((True, values), (False, -values)):
            expected = average_precision_score(positive, score.astype(np.float64))
            assert average_precision_from_sorted(everyone[0], positives, high) == pytest.approx(expected, abs=1e-12)


def test_best_label_ap_matches_scikit_learn_on_tied_float16_values_and_minus_zero_ties_plus_zero():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(5)
    n = 600
    labels = rng.integers(0, 3, n).astype(np.int32)
    labels[::13] = -1
    x = np.round(rng.normal(size=(n, 6)) * 2) / 2 + 1.5 * (labels == 1)[:, None] * np.array([1, -1, 1, -1, 1, -1])
    x[:, 5] = np.abs(x[:, 5]) + 1
    x[:100:2, 5], x[1:100:2, 5] = -0.0, 0.0  # −0 and +0 are one value: one tie group, rows in order
    x = x.astype(np.float16)
    stats = compute_neuron_stats(as_features(x), labels=labels, label_names=["A", "B", "C"])
    for column in range(6):
        page = stats.for_neuron(column)
        label = ["A", "B", "C"].index(page["best_label"]["label"])
        score = x[:, column].astype(np.float64) * (1 if page["best_label"]["direction"] == "high" else -1)
        assert page["best_label"]["ap"] == pytest.approx(average_precision_score(labels == label, score), rel=1e-6)
    assert stats.arrays["low_rows"][5].tolist() == list(range(10))
    assert stats.arrays["high_rows"][5][0] > 100


def test_sort_order_is_stable_and_falls_back_to_wide_pairs_beyond_65536_rows():
    from analysis.engine.stats import key_values, sort_keys, sorted_columns

    rng = np.random.default_rng(1)
    for n, dtype in ((1000, np.float16), (70_000, np.float16), (1000, np.float32)):
        values = (np.round(rng.normal(size=(n, 3)) * 8) / 8).astype(dtype)
        order, ordered = sorted_columns(sort_keys(values))
        assert order.dtype == (np.uint32 if n <= 65536 and dtype == np.float16 else np.uint64)
        np.testing.assert_array_equal(order, np.argsort(values.T, axis=1, kind="stable"))
        np.testing.assert_array_equal(key_values(ordered), np.sort(values.T.astype(np.float32), axis=1))


def test_histogram_counts_values_on_bin_edges_like_binning_each_value():
    x = np.repeat(np.linspace(-1, 3, 33), 5)[:, None].astype(np.float16)  # many values exactly on the edges
    x = np.concatenate([x, np.full((7, 1), 3, np.float16)])
    stats = compute_neuron_stats(as_features(x))
    values = x[:, 0].astype(np.float32)
    low, high = values.min(), values.max()
    bins = np.minimum(((values - low) / np.float64(high - low) * 32).astype(np.int64), 31)
    np.testing.assert_array_equal(stats.arrays["histogram"][0], np.bincount(bins, minlength=32))
    assert stats.arrays["histogram"][0].sum() == len(x)
