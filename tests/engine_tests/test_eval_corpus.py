"""A probe trained on one corpus, scored on another whose label set differs: labels are matched by name."""

import numpy as np
import pytest

from analysis.engine.labels import align_labels
from analysis.engine.lca import linguistic_correlation
from analysis.engine.methods import compute_ranking
from analysis.engine.probe import LabelledWords, evaluate_on, evaluate_probe, train_probe
from analysis.engine.probe_ablation import probe_ablation
from analysis.engine.splits import split_by_sentence
from tests.support.planted_store import planted_store

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(epochs=6, batch_size=32, lr=5e-2, l2=1e-3)
TRAIN_LABELS = ("ADJ", "DET", "NOUN", "VERB")
EVAL_LABELS = ("ADJ", "NOUN", "VERB", "X")  # DET missing (every id after ADJ shifts), X never seen by the probe


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    train = planted_store(root / "train", TRAIN_LABELS, key="train")
    other = planted_store(root / "eval", EVAL_LABELS, seed=1, n_sentences=40, strength=1.5, key="eval")
    return train, other


@pytest.fixture(scope="module")
def probe(stores):
    train, _ = stores
    split = split_by_sentence(train.sentence_offsets, dev_fraction=0.0)
    return train_probe(train.features(layers=[1]), train.labels, label_names=train.label_names, train=split.train,
                       **FAST)


def expected_accuracy(probe, store):
    """The probe's predictions and the truth compared as label names, X words left out."""
    predicted = probe.predict_labels(np.asarray(store.features(layers=[1]).rows(np.arange(store.n_words))))
    truth = [store.label_names[i] for i in store.labels]
    pairs = [(p, t) for p, t in zip(predicted, truth) if t != "X"]
    return sum(p == t for p, t in pairs) / len(pairs), len(pairs)


def test_align_labels_matches_by_name_and_counts_the_unknown():
    aligned, unknown = align_labels(np.array([0, 1, 2, 3, -1, 3]), EVAL_LABELS, TRAIN_LABELS)
    assert aligned.tolist() == [0, 2, 3, -1, -1, -1]
    assert unknown == {"X": 2}
    with pytest.raises(ValueError, match=r"label ids must lie in \[-1, 4\)"):
        align_labels(np.array([0, 4]), EVAL_LABELS, TRAIN_LABELS)


def test_accuracy_on_another_corpus_equals_the_correctly_aligned_value(stores, probe):
    _, other = stores
    words = LabelledWords(other.features(layers=[1]), other.labels, other.label_names)
    result = evaluate_on(probe, words)
    accuracy, n_scored = expected_accuracy(probe, other)
    assert result["accuracy"] == pytest.approx(accuracy) and result["n_words"] == n_scored
    n_x = int(np.sum(other.labels == other.label_names.index("X")))
    assert result["unknown_labels"] == {"X": n_x} and result["n_unknown_label"] == n_x > 0
    assert set(result["per_label_accuracy"]) == {"ADJ", "NOUN", "VERB"}
    assert accuracy > 0.6
    # what the store's own ids would have given: far from the truth (NOUN read as DET, VERB as NOUN, X as VERB)
    unaligned = evaluate_probe(probe, other.features(layers=[1]), other.labels, test=np.arange(other.n_words))
    assert unaligned["test_accuracy"] < accuracy - 0.3


def test_probe_ablation_scores_every_point_on_the_other_corpus(stores, probe):
    train, other = stores
    split = split_by_sentence(train.sentence_offsets, dev_fraction=0.0)
    features = train.features(layers=[1])
    ranking = linguistic_correlation(features, train.labels, label_names=train.label_names, train=split.train,
                                     **FAST)
    words = LabelledWords(other.features(layers=[1]), other.labels, other.label_names)
    result = probe_ablation(probe, features, train.labels, ranking.order, train=split.train, held_out=words,
                            percents=(40, 100), random_seeds=2)
    accuracy, _ = expected_accuracy(probe, other)
    assert result.baseline_accuracy == pytest.approx(accuracy)
    assert result.at("zero_out", "top", 100)["accuracy"] == pytest.approx(accuracy)
    assert result.params["scored_on"] == "held-out corpus" and result.params["unknown_labels"]["X"] > 0
    assert result.at("retrain", "top", 40)["accuracy"] > result.at("retrain", "bottom", 40)["accuracy"]
    truth = [other.label_names[i] for i in other.labels if other.label_names[i] != "X"]
    majority = train.label_names[int(np.bincount(train.labels[split.train]).argmax())]
    assert result.majority_accuracy == pytest.approx(truth.count(majority) / len(truth))
    with pytest.raises(ValueError, match="either test rows or a held-out corpus"):
        probe_ablation(probe, features, train.labels, ranking.order, train=split.train, test=split.test,
                       held_out=words)


def test_compute_ranking_scores_the_lca_probe_on_the_eval_store(stores):
    train, other = stores
    ranking = compute_ranking(train, "lca", layers=[1], eval_store=other, **FAST)
    held_out = ranking.metrics["held_out"]
    assert held_out["unknown_labels"]["X"] > 0 and held_out["accuracy"] > 0.6
    assert ranking.params["eval_store_key"] == "eval" and ranking.params["eval_corpus_sha256"] == "corpus-eval"


def test_an_eval_store_of_another_model_or_label_column_is_refused(stores, tmp_path):
    train, _ = stores
    other_model = planted_store(tmp_path / "m", EVAL_LABELS, key="m", model_sha256="another-model")
    with pytest.raises(ValueError, match="extracted from another model"):
        compute_ranking(train, "lca", layers=[1], eval_store=other_model, **FAST)
    other_column = planted_store(tmp_path / "c", EVAL_LABELS, key="c", label_column="xpos")
    with pytest.raises(ValueError, match="labelled by xpos, the training corpus by upos"):
        compute_ranking(train, "lca", layers=[1], eval_store=other_column, **FAST)
