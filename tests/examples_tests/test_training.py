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
