"""The example models train deterministically into folders the engine loads (tiny sizes: seconds, not minutes)."""

import hashlib

import pytest

from analysis.engine.loading import load_model
from analysis.examples.grammar import generate
from analysis.examples.train import (Schedule, Sizes, train_causal_lm, train_translation_model, translate,
                                     translation_quality, verb_forms)

TINY = Sizes(d_model=32, heads=2, ffn=64)
SHORT = Schedule(epochs=1)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_translation_model_trains_the_same_twice_and_loads_as_an_encoder_decoder(tmp_path):
    pairs = generate(200, seed=0)
    first = train_translation_model(pairs, tmp_path / "a", seed=1, sizes=TINY, schedule=SHORT, log=lambda _: None)
    second = train_translation_model(pairs, tmp_path / "b", seed=1, sizes=TINY, schedule=SHORT, log=lambda _: None)
    assert _digest(first) == _digest(second)
    assert load_model(first).info.kind == "encoder-decoder"
    hypotheses = translate(first, [p.source for p in pairs[:5]])
    assert len(hypotheses) == 5 and all(isinstance(t, str) for h in hypotheses for t in h)


def test_a_causal_lm_trains_and_loads_as_a_decoder(tmp_path):
    folder = train_causal_lm([p.source for p in generate(200, seed=0)], tmp_path / "lm", seed=0, sizes=TINY,
                             schedule=SHORT, log=lambda _: None)
    assert load_model(folder).info.kind == "decoder"


def test_translation_quality_counts_bleu_exact_sentences_and_verb_forms():
    references = [p.target for p in generate(20, seed=5)]
    assert translation_quality(references, references) == pytest.approx(
        {"bleu": 100.0, "exact_percent": 100.0, "verb_forms_percent": 100.0, "sentences": 20})
    wrong_tense = [[{"+ra": "+ta", "+ta": "+ra"}.get(t, t) for t in r] for r in references]
    quality = translation_quality(wrong_tense, references)
    assert quality["verb_forms_percent"] == 0 and quality["exact_percent"] == 0 and quality["bleu"] > 50


def test_verb_forms_reads_stem_tense_and_agreement():
    assert verb_forms(["hund", "la", "vid", "+ta", "+s", "."]) == [("vid", "+ta", "+s")]


def test_the_tense_experiment_ranks_the_last_encoder_layer_and_counts_only_clean_flips(tmp_path):
    """The mechanics on an untrained tiny model (the figures themselves come from benchmarks/bench_examples.py):
    the neurons are the last encoder layer's, α is one of the candidates, rates are shares of the present-tense
    sentences."""
    from analysis.examples.tense import present_tense_sentences, tense_experiment

    folder = train_translation_model(generate(100, seed=0), tmp_path / "tm", seed=0, sizes=TINY, schedule=SHORT,
                                     log=lambda _: None)
    dev, test = generate(12, seed=2), generate(12, seed=3)
    result = tense_experiment(folder, generate(80, seed=1), dev, test, tmp_path / "work", k=3, alphas=(2.0, 5.0))
    assert len(result["neurons"]) == 3 and all(n.startswith("enc.L2:") for n in result["neurons"])
    assert result["alpha"] in (2.0, 5.0) and set(result["dev_flip_rate"]) == {2.0, 5.0}
    assert result["test_sentences"] == len(present_tense_sentences(test)) > 0
    assert 0 <= result["flip_rate"] <= 1 and 0 <= result["random_flip_rate"] <= 1
