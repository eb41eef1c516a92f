"""The elastic-net probe and the sentence splits."""

import json

import numpy as np
import pytest

from analysis.engine.features import Features, as_features
from analysis.engine.neurons import layer_neurons
from analysis.engine.probe import NEUROX_DEFAULTS, Probe, train_probe
from analysis.engine.splits import split_by_sentence, words_of_sentences

FAST = dict(epochs=8, batch_size=64, lr=5e-2, l2=1e-3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def planted(n=600, d=12, n_classes=3, seed=0, signal_units=(2, 7)):
    """Labels carried by a few units (one-hot-ish shifts), the rest noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    for c in range(n_classes):
        x[labels == c, signal_units[c % len(signal_units)]] += 3.0 * (1 if c < len(signal_units) else -1)
    return x, labels


# ---- splits ---------------------------------------------------------------------------------------------------


def test_split_keeps_sentences_whole_and_uses_the_benchmark_protocol():
    lengths = np.random.default_rng(1).integers(1, 9, size=50)
    offsets = np.r_[0, np.cumsum(lengths)]
    split = split_by_sentence(offsets, test_fraction=0.2, dev_fraction=0.1)
    sentence_of = np.repeat(np.arange(50), lengths)
    assert sorted(np.r_[split.train, split.dev, split.test].tolist()) == list(range(offsets[-1]))
    assert set(sentence_of[split.train]) == set(range(35))
    assert set(sentence_of[split.dev]) == set(range(35, 40))  # carved from the end of the first 80 %
    assert set(sentence_of[split.test]) == set(range(40, 50))  # last 20 %


def test_shuffled_split_is_seeded_and_by_sentence():
    offsets = np.r_[0, np.cumsum(np.full(40, 3))]
    a = split_by_sentence(offsets, shuffle=True, seed=3)
    b = split_by_sentence(offsets, shuffle=True, seed=3)
    c = split_by_sentence(offsets, shuffle=True, seed=4)
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)
    sentences = set((a.test // 3).tolist())
    assert len(a.test) == 3 * len(sentences)  # whole sentences only


def test_split_rejects_bad_input():
    with pytest.raises(ValueError, match="start at 0"):
        split_by_sentence([1, 3, 5])
    with pytest.raises(ValueError, match="sum below 1"):
        split_by_sentence([0, 2, 4], test_fraction=0.6, dev_fraction=0.5)
    assert words_of_sentences([0, 2, 2, 5], [2, 1]).tolist() == [2, 3, 4]  # empty sentence 1 owns no words


# ---- training -------------------------------------------------------------------------------------------------


def test_probe_learns_planted_signal_and_reports_metrics():
    x, y = planted()
    probe = train_probe(as_features(x), y, label_names=["a", "b", "c"], train=np.arange(400), dev=np.arange(400, 500), test=np.arange(500, 600), **FAST)
    m = probe.metrics
    assert m["test_accuracy"] > 0.9 and m["train_accuracy"] > 0.9 and m["dev_accuracy"] > 0.9
    assert 0.2 < m["majority_accuracy"] < 0.5
    assert set(m["per_label_accuracy"]) == {"a", "b", "c"}
    assert m["n_train"] == 400 and m["n_test"] == 100
    # the weights that matter sit on the planted units (inputs are standardised, so magnitudes compare)
    assert set(np.argsort(-np.abs(probe.weight).max(axis=0))[:2]) == {2, 7}


def test_auto_l2_selects_on_dev_and_refits_on_train_plus_dev():
    x, y = planted(seed=2)
    probe = train_probe(
        as_features(x), y, label_names=["a", "b", "c"], train=np.arange(400), dev=np.arange(400, 500),
        test=np.arange(500, 600), l2="auto", l2_grid=(1e-3, 1.0), epochs=6, batch_size=64, lr=5e-2,
    )  # fmt: skip
    selection = probe.metrics["l2_selection"]
    assert set(selection) == {"0.001", "1.0"}
    assert probe.params["l2"] == 0.001  # λ2 = 1 crushes the weights: worse dev cross-entropy
    assert selection["0.001"]["dev_cross_entropy"] < selection["1.0"]["dev_cross_entropy"]
    assert probe.metrics["n_train"] == 500  # refit on train + dev
    with pytest.raises(ValueError, match="dev split"):
        train_probe(as_features(x), y, label_names=["a", "b", "c"], train=np.arange(400), l2="auto")


def test_training_is_deterministic_under_a_seed_and_shuffles_by_seed():
    x, y = planted(seed=4)
    run = lambda seed: train_probe(as_features(x), y, label_names=["a", "b", "c"], train=np.arange(500), seed=seed, **FAST)
    a, b, c = run(0), run(0), run(1)
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    assert not np.array_equal(a.weight, c.weight)


def test_streaming_within_a_tiny_memory_budget_reaches_the_in_memory_accuracy():
    x, y = planted(n=700, d=20, seed=5)
    features = Features([x[:, :8].astype(np.float16), x[:, 8:].astype(np.float16)], layer_neurons("hidden", 0, 8) + layer_neurons("hidden", 1, 12))
    kwargs = dict(label_names=["a", "b", "c"], train=np.arange(600), test=np.arange(600, 700), **FAST)
    in_memory = train_probe(features, y, **kwargs)
    streamed = train_probe(features, y, memory_budget_mb=64 * 20 * 4 / 2**20, **kwargs)  # 64-row chunks
    np.testing.assert_allclose(streamed.mean, in_memory.mean, rtol=1e-5, atol=1e-6)
    assert abs(streamed.metrics["test_accuracy"] - in_memory.metrics["test_accuracy"]) <= 0.02
    assert in_memory.metrics["test_accuracy"] > 0.9
    again = train_probe(features, y, memory_budget_mb=64 * 20 * 4 / 2**20, **kwargs)
    assert np.array_equal(again.weight, streamed.weight)  # the chunk shuffle follows the seed


def test_a_streamed_epoch_reads_contiguous_chunks_and_visits_every_row_once():
    from analysis.engine.probe import _RowSource
    from analysis.engine.loading import pick_device

    x, _ = planted(n=700, d=20, seed=5)
    index = np.random.default_rng(0).permutation(650)  # training rows in any order
    source = _RowSource(as_features(x), index, np.zeros(20, np.float32), np.ones(20, np.float32), 64, pick_device("cpu"))
    rng = np.random.default_rng(1)
    chunks = source.epoch_chunks(rng)
    assert sorted(len(c) for c in chunks) == [10] + [64] * 10
    for chunk in chunks:  # each chunk is one run of consecutive store rows, shuffled within
        rows = np.sort(index[chunk])
        assert np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows)))
    assert np.array_equal(np.sort(np.concatenate(chunks)), np.arange(650))
    assert not np.array_equal(np.concatenate(chunks), np.concatenate(source.epoch_chunks(rng)))  # reshuffled per epoch


def test_save_load_round_trip_gives_identical_predictions_without_pickle(tmp_path):
    x, y = planted(seed=6)
    probe = train_probe(as_features(x, layer=3), y, label_names=["a", "b", "c"], train=np.arange(500), test=np.arange(500, 600), **FAST)
    probe.save(tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["probe.json", "probe.safetensors"]
    loaded = Probe.load(tmp_path / "p")
    assert np.array_equal(loaded.predict(x), probe.predict(x))
    assert loaded.label_names == ["a", "b", "c"] and loaded.neuron_ids[5].label == "L3:5"
    assert loaded.metrics["test_accuracy"] == probe.metrics["test_accuracy"]
    meta = json.loads((tmp_path / "p" / "probe.json").read_text())
    meta["format"] = "something-else"
    (tmp_path / "p" / "probe.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not a saved probe"):
        Probe.load(tmp_path / "p")


def test_missing_labels_are_excluded_and_bad_labels_refused():
    x, y = planted(seed=7)
    y = y.copy()
    y[::3] = -1  # a third of the words have no label
    probe = train_probe(as_features(x), y, label_names=["a", "b", "c"], train=np.arange(450), test=np.arange(450, 600), **FAST)
    assert probe.metrics["n_train"] == int(np.sum(y[:450] >= 0))
    assert probe.metrics["n_test"] == int(np.sum(y[450:] >= 0))
    with pytest.raises(ValueError, match=r"label ids must lie in \[-1, 3\)"):
        train_probe(as_features(x), np.where(y == 2, 5, y), label_names=["a", "b", "c"], train=np.arange(450), **FAST)
    with pytest.raises(ValueError, match="no labelled training words"):
        train_probe(as_features(x), np.full(600, -1), label_names=["a", "b", "c"], train=np.arange(450), **FAST)


def test_label_unseen_in_training_is_reported():
    x, y = planted(seed=8)
    train = np.flatnonzero(y[:500] != 2)  # label "c" never trained on
    probe = train_probe(as_features(x), y, label_names=["a", "b", "c"], train=train, test=np.arange(500, 600), **FAST)
    assert probe.metrics["labels_unseen_in_train"] == ["c"]
    assert probe.metrics["per_label_accuracy"]["c"] == 0.0


def test_zero_out_equals_a_probe_restricted_to_the_kept_inputs():
    x, y = planted(seed=9)
    probe = train_probe(as_features(x), y, label_names=["a", "b", "c"], train=np.arange(500), **FAST)
    keep = np.array([1, 2, 7])
    z = (x - probe.mean) / probe.std
    z[:, np.setdiff1d(np.arange(x.shape[1]), keep)] = 0
    np.testing.assert_allclose(probe.logits(x, keep=keep), z @ probe.weight.T + probe.bias, rtol=1e-5, atol=1e-5)


def test_neurox_defaults_are_available():
    x, y = planted(seed=10)
    probe = train_probe(as_features(x), y, label_names=["a", "b", "c"], train=np.arange(500), **NEUROX_DEFAULTS)
    assert probe.params["lr"] == 1e-3 and probe.params["batch_size"] == 512 and probe.params["l2"] == 1e-5


def test_proximal_l1_step_gives_exact_zeros_on_noise_units_and_keeps_the_signal():
    x, labels = planted(n=900, d=20)
    index = np.arange(900)
    options = dict(FAST, l1=3e-2, train=index[:700], test=index[700:])
    proximal = train_probe(as_features(x), labels, label_names=["a", "b", "c"], l1_step="proximal", **options)
    subgradient = train_probe(as_features(x), labels, label_names=["a", "b", "c"], **options)
    noise = np.setdiff1d(np.arange(20), [2, 7])
    assert (proximal.weight[:, noise] == 0).mean() > 0.8  # soft-thresholding lands on zero
    assert (subgradient.weight == 0).mean() == 0  # a subgradient step only oscillates around it
    assert np.all(np.abs(proximal.weight[:, [2, 7]]).max(axis=0) > 0.5)
    assert proximal.metrics["test_accuracy"] > 0.9
    assert proximal.params["l1_step"] == "proximal" and subgradient.params["l1_step"] == "subgradient"
    with pytest.raises(ValueError, match="l1_step must be one of"):
        train_probe(as_features(x), labels, label_names=["a", "b", "c"], l1_step="exact", **options)
