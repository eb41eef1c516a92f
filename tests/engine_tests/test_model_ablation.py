"""Model-level ablation curves on tiny models: the model's own metric, along a ranking, in both directions."""

import json
import math

import numpy as np
import pytest

from analysis.engine.jobs import Cancelled, Job
from analysis.engine.model_ablation import (
    AblationError,
    ablation_curve,
    causal_lm_task,
    curve_counts,
    masked_lm_task,
    probe_task,
    translation_task,
)
from analysis.engine.neurons import NeuronId
from analysis.engine.ranking import Ranking, order_by_score
from tests.support.tiny_models import TOY_SENTENCES, build_tiny_model, fit_tiny_causal_lm, tiny_model_dir

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def _load(path):
    from analysis.engine.loading import load_model

    return load_model(path, device="cpu")


@pytest.fixture(scope="module")
def fitted_gpt2(tmp_path_factory):
    """A tiny GPT-2 trained on the toy sentences, so its loss is far below chance and ablation can hurt it."""
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("fitted-gpt2")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir("gpt2"))
    model = fit_tiny_causal_lm(build_tiny_model("gpt2"), tokenizer, steps=60)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return _load(path)


def _mean_abs_activation_ranking(lm, texts, neuron_set="mlp") -> Ranking:
    """A ranking actually computed from the model: mean |activation| of each neuron over the text tokens."""
    from analysis.engine.loading import capture

    sites = lm.neuron_sites()[neuron_set]
    batch = lm.tokenizer(texts, padding=True, return_tensors="pt")
    keep = batch["attention_mask"].bool()
    with torch.inference_mode(), capture(lm.model, sites) as captured:
        lm.model(**batch)
        scores = np.concatenate([captured[s.key][keep].abs().mean(0).numpy() for s in sites])
    neuron_ids = [NeuronId(neuron_set, s.layer, u) for s in sites for u in range(s.units)]
    return Ranking("mean-abs", neuron_ids, order_by_score(scores), scores)


def test_curve_counts():
    assert curve_counts(128) == [0, 13, 26, 38, 51, 64, 77, 90, 102, 115, 128]
    assert curve_counts(128, steps=50) == [0, 50, 100, 128]
    assert curve_counts(5000, steps=50, max_neurons=2000)[-3:] == [1900, 1950, 2000]
    assert curve_counts(10, steps=[4, 2, 2]) == [0, 2, 4]
    with pytest.raises(AblationError, match="outside"):
        curve_counts(10, steps=[11])
    with pytest.raises(AblationError, match="positive"):
        curve_counts(10, steps=0)


def test_causal_lm_top_neurons_hurt_more_than_bottom_ones(fitted_gpt2):
    lm = fitted_gpt2
    ranking = _mean_abs_activation_ranking(lm, TOY_SENTENCES)
    calls = []
    result = ablation_curve(lm, ranking, texts=TOY_SENTENCES, job=Job(on_progress=lambda *report: calls.append(report)))

    assert json.loads(json.dumps(result)) == result  # JSON-serialisable as is
    assert result["task"] == "causal-lm" and result["primary"] == "loss"
    assert result["total_neurons"] == 128
    assert result["x"]["count"] == curve_counts(128) and result["x"]["percent"][-1] == 100.0
    assert calls[-1] == (21, 21, "evaluations") and [c[0] for c in calls] == list(range(1, 22))

    baseline = result["baseline"]["loss"]
    top, bottom = result["curves"]["top"]["loss"], result["curves"]["bottom"]["loss"]
    assert baseline < math.log(30522) / 2  # the fitted model is far better than chance
    assert top[0] == bottom[0] == baseline and top[-1] == bottom[-1]
    # measured: top 0.48 → 0.75 (50 %) → 1.07 (100 %), bottom 0.48 → 0.49 (50 %) → 1.07
    assert top[-1] > baseline + 0.3  # removing every MLP neuron hurts
    assert all(b >= a - 0.02 for a, b in zip(top, top[1:]))  # loss rises as more neurons are zeroed
    assert top[5] > bottom[5] + 0.15  # at 50 %: the top half matters more than the bottom half
    assert np.mean(top[1:-1]) > np.mean(bottom[1:-1])
    assert bottom[2] < baseline + 0.25 * (top[-1] - baseline)  # the weakest 20 % barely matter
    perplexity = result["curves"]["top"]["perplexity"]
    assert perplexity[0] == pytest.approx(math.exp(baseline))

    again = causal_lm_task(lm, TOY_SENTENCES).evaluate()
    assert again["loss"] == baseline  # deterministic
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.model.modules())


def test_mean_ablation_and_random_order(fitted_gpt2):
    lm = fitted_gpt2
    ranking = _mean_abs_activation_ranking(lm, TOY_SENTENCES, neuron_set="hidden")
    with pytest.raises(AblationError, match="means"):
        ablation_curve(lm, ranking, texts=TOY_SENTENCES, operation="mean")
    means = {n: 0.5 for n in ranking.neuron_ids}
    task = causal_lm_task(lm, TOY_SENTENCES)
    zeroed = ablation_curve(lm, ranking, task, steps=[48], orders=("top", "random"))
    meaned = ablation_curve(lm, ranking, task, operation="mean", means=means, steps=[48], orders=("top", "random"))
    assert set(zeroed["curves"]) == {"top", "random"}
    assert meaned["curves"]["top"]["loss"][1] != zeroed["curves"]["top"]["loss"][1]
    repeat = ablation_curve(lm, ranking, task, steps=[48], orders=("random",))
    assert repeat["curves"]["random"] == zeroed["curves"]["random"]  # the random order is seeded


def test_a_cancel_stops_the_curve_within_one_evaluation_and_removes_hooks(fitted_gpt2):
    lm = fitted_gpt2
    ranking = [NeuronId("mlp", 0, u) for u in range(64)]
    progress = []
    job = Job(on_progress=lambda *report: progress.append(report), should_stop=lambda: len(progress) >= 2)

    with pytest.raises(Cancelled):
        ablation_curve(lm, ranking, texts=TOY_SENTENCES, job=job)
    assert [done for done, _, _ in progress] == [1, 2]  # asked to stop after the second, no third evaluation
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.model.modules())


@pytest.mark.parametrize("arch", ["t5", "marian"])
def test_translation_metrics_and_curve(arch):
    lm = _load(tiny_model_dir(arch))
    sources = ["the cat sat on the mat .", "a dog ran to the park ."]
    references = ["le chat est assis .", "un chien a couru ."]
    task = translation_task(lm, sources, references, max_new_tokens=8)
    first, second = task.evaluate(), task.evaluate()
    assert first == second  # greedy decoding is deterministic
    assert 0.0 <= first["bleu"] <= 100.0 and 0.0 <= first["chrf"] <= 100.0 and math.isfinite(first["loss"])
    ranking = [NeuronId("enc.mlp", layer, unit) for layer in (0, 1) for unit in range(64)]
    result = ablation_curve(lm, ranking, task, steps=[64, 128], orders=("top",))
    assert result["task"] == "translation" and result["metrics"] == ["bleu", "chrf", "loss"]
    assert len(result["curves"]["top"]["chrf"]) == 3
    assert result["curves"]["top"]["loss"][-1] != first["loss"]
    with pytest.raises(AblationError, match="references"):
        ablation_curve(lm, ranking, sources=sources)


def test_masked_lm_loss_is_deterministic_and_ablation_changes_it():
    lm = _load(tiny_model_dir("bert"))
    task = masked_lm_task(lm, TOY_SENTENCES, seed=3)
    assert task.info["masked_tokens"] == sum(max(1, round(0.15 * len(s.split()))) for s in TOY_SENTENCES)
    same = masked_lm_task(lm, TOY_SENTENCES, seed=3).evaluate()
    assert task.evaluate() == same
    assert 0.0 <= same["accuracy"] <= 1.0
    result = ablation_curve(lm, [NeuronId("hidden", 2, u) for u in range(32)], task, steps=[16, 32])
    assert result["task"] == "masked-lm"
    assert result["curves"]["top"]["loss"][-1] != same["loss"]


def test_probe_accuracy_task_sees_the_ablated_model():
    from analysis.engine.loading import capture
    from analysis.engine.probe import Probe

    lm = _load(tiny_model_dir("bert"))
    sentences = [s.split() for s in TOY_SENTENCES]
    labels = [["DET" if w in ("the", "a", "my") else "OTHER" for w in s] for s in sentences]
    site = lm.neuron_sites()["hidden"][2]

    def word_activations(batch_sentences):
        rows = []
        for words in batch_sentences:
            encoding = lm.tokenizer([words], is_split_into_words=True, return_tensors="pt")
            with torch.inference_mode(), capture(lm.model, [site]) as captured:
                lm.model(**encoding)
            tokens = captured[site.key][0]
            last = {w: t for t, w in enumerate(encoding.word_ids(0)) if w is not None}
            rows.extend(tokens[last[w]].numpy() for w in range(len(words)))
        return np.stack(rows)

    activations = word_activations(sentences)
    gold = np.array([l == "DET" for s in labels for l in s])
    direction = activations[gold].mean(0) - activations[~gold].mean(0)  # a crude but real "probe"
    neuron_ids = [NeuronId("hidden", 2, u) for u in range(32)]
    probe = Probe(
        weight=np.stack([-direction, direction]).astype(np.float32), bias=np.zeros(2, np.float32),
        mean=(activations[gold].mean(0) + activations[~gold].mean(0)).astype(np.float32) / 2,
        std=np.ones(32, np.float32),
        label_names=["OTHER", "DET"], neuron_ids=neuron_ids,
    )
    task = probe_task(probe, word_activations, sentences, labels)
    baseline = task.evaluate()["accuracy"]
    assert baseline > 0.9
    result = ablation_curve(lm, neuron_ids, task, steps=[32], orders=("top",))
    assert result["curves"]["top"]["accuracy"][-1] < baseline  # every feature zeroed: the probe is lost
