"""Probe-level ablation: top / random / bottom, zero-out and retrain."""

from pathlib import Path

import numpy as np
import pytest

from analysis.engine.features import as_features
from analysis.engine.lca import linguistic_correlation
from analysis.engine.probe_ablation import kept_count, probe_ablation
from analysis.engine.splits import split_by_sentence
from tests.assets import UD_DEV, minilm_model_dir


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def informative_problem(n=1000, d=40, seed=0):
    """Units 0-9 carry the label with decreasing strength; units 10-39 are noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    for unit in range(10):
        x[:, unit] += (1.5 - 0.1 * unit) * np.where(labels == unit % 4, 1.0, -0.3)
    return x, labels


def check_top_random_bottom(result, percents, modes=("zero_out", "retrain")):
    for mode in modes:
        for percent in percents:
            top, random, bottom = (result.at(mode, s, percent)["accuracy"] for s in ("top", "random", "bottom"))
            assert top > random > bottom, (mode, percent, top, random, bottom)


def test_synthetic_top_beats_random_beats_bottom_with_curves():
    x, y = informative_problem()
    features = as_features(x)
    ranking, probe = linguistic_correlation(
        features, y, label_names=list("abcd"), train=np.arange(800), test=np.arange(800, 1000),
        epochs=10, batch_size=64, lr=5e-2, l2=1e-3, return_probe=True,
    )  # fmt: skip
    result = probe_ablation(
        probe, features, y, ranking.order, train=np.arange(800), test=np.arange(800, 1000),
        percents=(10, 15, 20, 100), random_seeds=5,
    )  # fmt: skip
    check_top_random_bottom(result, (10, 15, 20))
    random_point = result.at("retrain", "random", 10)
    assert len(random_point["accuracies"]) == 5 and random_point["accuracy_std"] > 0
    assert result.at("zero_out", "top", 100)["accuracy"] == pytest.approx(result.baseline_accuracy)
    curve = result.curve("zero_out", "top")
    assert curve["kept"] == [4, 6, 8, 40] and curve["removed"] == [36, 34, 32, 0]
    assert curve["kept_percent"][0] == pytest.approx(10.0) and curve["removed_percent"][-1] == 0.0
    assert set(result.to_dict()["curves"]) == {"zero_out", "retrain"}
    assert result.majority_accuracy < 0.4


def test_ablation_is_deterministic_and_validates_its_input():
    x, y = informative_problem(seed=1)
    features = as_features(x)
    ranking, probe = linguistic_correlation(
        features, y, label_names=list("abcd"), train=np.arange(800), epochs=5, batch_size=64, lr=5e-2, l2=1e-3,
        return_probe=True,
    )  # fmt: skip
    run = lambda: probe_ablation(probe, features, y, ranking.order, train=np.arange(800), test=np.arange(800, 1000), percents=(20,), modes=("zero_out",), seed=4)
    assert run().points == run().points
    with pytest.raises(ValueError, match="permutation"):
        probe_ablation(probe, features, y, ranking.order[:10], train=np.arange(800), test=np.arange(800, 1000))
    with pytest.raises(ValueError, match="unknown ablation modes"):
        probe_ablation(probe, features, y, ranking.order, train=np.arange(800), test=np.arange(800, 1000), modes=("melt",))
    assert kept_count(384, 10) == 38 and kept_count(5, 1) == 1


# ---- the real corpus ------------------------------------------------------------------------------------------


def read_upos(path: Path, max_sentences: int):
    sentences, labels, words, tags = [], [], [], []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line:
                if words:
                    sentences.append(words)
                    labels.append(tags)
                    words, tags = [], []
                    if len(sentences) == max_sentences:
                        break
                continue
            if line.startswith("#"):
                continue
            columns = line.split("\t")
            if "-" in columns[0] or "." in columns[0]:
                continue
            words.append(columns[1])
            tags.append(columns[3])
    return sentences, labels


def minilm_layer(sentences, layer: int) -> np.ndarray:
    """Hidden state after ``layer`` for the last subword of every word (computed here, not by the extractor)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = minilm_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(sentences), 32):
            batch = sentences[start : start + 32]
            encoded = tokenizer(batch, is_split_into_words=True, return_tensors="pt", padding=True)
            hidden = model(**encoded, output_hidden_states=True).hidden_states[layer]
            for b, sentence in enumerate(batch):
                last = {word: t for t, word in enumerate(encoded.word_ids(b)) if word is not None}
                rows.append(hidden[b, [last[w] for w in range(len(sentence))]].numpy())
    return np.concatenate(rows)


def test_real_corpus_top_beats_random_beats_bottom():
    sentences, tags = read_upos(UD_DEV, max_sentences=250)
    x = minilm_layer(sentences, layer=3)
    names = sorted({t for sentence in tags for t in sentence})
    y = np.array([names.index(t) for sentence in tags for t in sentence])
    offsets = np.r_[0, np.cumsum([len(s) for s in sentences])]
    split = split_by_sentence(offsets, dev_fraction=0.0)
    features = as_features(x, layer=3)
    ranking, probe = linguistic_correlation(
        features, y, label_names=names, train=split.train, test=split.test, l2=1e-3, return_probe=True
    )
    assert probe.metrics["test_accuracy"] > 0.8
    result = probe_ablation(probe, features, y, ranking.order, train=split.train, test=split.test, percents=(10, 20))
    check_top_random_bottom(result, (10, 20))


def test_training_and_ablating_is_one_count_that_never_goes_back():
    """The probe-ablation step trains its probe, then evaluates: the bar went 81/100 epochs -> 18/112
    evaluations. One total, known at the first report, and ``done`` only grows."""
    from analysis.engine.jobs import Job
    from analysis.engine.probe_ablation import TRAIN_AND_ABLATE_UNIT, planned_evaluations, train_and_ablate

    x, y = informative_problem(n=600)
    reports = []
    split = split_by_sentence(np.arange(0, 601, 6), seed=0)  # 100 six-word sentences
    result = train_and_ablate(as_features(x), y, label_names=list("abcd"), split=split, percents=(10, 50),
                              modes=("zero_out",), random_seeds=2, job=Job(on_progress=lambda *r: reports.append(r)))
    assert result.params["percents"] == [10, 50]
    totals, dones = {total for _, total, _ in reports}, [done for done, _, _ in reports]
    assert len(totals) == 1 and dones == sorted(dones) and {unit for *_, unit in reports} == {TRAIN_AND_ABLATE_UNIT}
    evaluations = planned_evaluations((10, 50), ("zero_out",), 2)
    assert dones[-1] == totals.pop() and evaluations == 8 and dones[-evaluations:] == list(
        range(dones[-1] - evaluations + 1, dones[-1] + 1))
