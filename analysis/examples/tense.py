"""The tense experiment of the translation example (after Bau et al., ICLR'19): a handful of encoder neurons
control the tense of the translation.

1. Rank the last encoder layer's neurons for the Tense label with linguistic correlation (lca) on the analysis
   sentences' verbs.
2. On held-out present-tense sentences, **shift** the top ``k`` neurons at the verb positions by
   α × (past mean − present mean), each neuron by its own difference of class means.
3. A sentence flips only if the manipulated translation equals the unmodified one with the tense token changed
   to the past and nothing else (``grammar.with_tense``). α is chosen on a dev set; random neurons of the same
   layer, at the same α, are the baseline.

Everything goes through the engine (extraction, ranking, manipulation), the same code the site runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .grammar import PAST, PRESENT, Pair, to_conllu, with_tense
from .train import MAX_TRANSLATION_TOKENS

ALPHAS = (2.0, 3.0, 5.0)
TOP_K = 10


@dataclass
class TenseNeurons:
    layer_set: str
    layer: int
    top: list  # NeuronIds, best first
    past_minus_present: np.ndarray  # per unit of the layer: difference of the class means
    ranking: object  # the engine Ranking

    def shift_amounts(self, neurons, alpha: float) -> list[float]:
        return [alpha * float(self.past_minus_present[n.unit]) for n in neurons]


def rank_tense_neurons(lm, pairs: list[Pair], work_dir, *, k: int = TOP_K, seed: int = 0) -> TenseNeurons:
    """The top ``k`` neurons of the last encoder layer for Tense, with their past − present mean differences."""
    from analysis.engine.extract import ExtractionParams, extract_activations
    from analysis.engine.formats import read_conllu
    from analysis.engine.methods import compute_ranking

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "tense.conllu"
    path.write_text(to_conllu(pairs), encoding="utf-8")
    corpus = read_conllu(path, "feats:Tense")
    store = extract_activations(lm, corpus, work_dir / "stores",
                                ExtractionParams(neuron_sets=("hidden",), label_column="feats:Tense"))
    layer_set, layer = "enc.hidden", store.neuron_sets["enc.hidden"]["layers"] - 1
    ranking = compute_ranking(store, "lca", neuron_sets=[layer_set], layers=[layer], seed=seed)
    top = ranking.top(k)
    values = np.asarray(store.array(layer_set, layer))
    names = store.label_names
    labels = store.labels
    past = values[labels == names.index(PAST)].mean(axis=0)
    present = values[labels == names.index(PRESENT)].mean(axis=0)
    return TenseNeurons(layer_set, layer, top, past - present, ranking)


def present_tense_sentences(pairs: list[Pair]) -> list[Pair]:
    """Single-clause present-tense sentences (one verb to move)."""
    return [p for p in pairs if p.tenses == [PRESENT]]


def flip_rate(lm, pairs: list[Pair], neurons, tense: TenseNeurons, alpha: float) -> float:
    """The share of ``pairs`` whose translation turns past and changes nothing else when ``neurons`` are shifted by
    ``alpha`` × their own past − present difference at the verb."""
    from analysis.engine.interventions import shift
    from analysis.engine.manipulation import manipulate

    edits = shift(neurons, tense.shift_amounts(neurons, alpha))
    result = manipulate(lm, [p.source for p in pairs], edits, chosen_words=[p.verb_positions() for p in pairs],
                        max_new_tokens=MAX_TRANSLATION_TOKENS)
    flips = 0
    for entry in result["sentences"]:
        original = entry["original"]["text"].split()
        flips += entry["manipulated"]["text"].split() == with_tense(original, PAST) != original
    return flips / max(len(pairs), 1)


def random_neurons(tense: TenseNeurons, k: int, seed: int) -> list:
    """``k`` random neurons of the same layer (the baseline, shifted by the same recipe)."""
    from analysis.engine.neurons import NeuronId

    rng = random.Random(seed)
    return [NeuronId(tense.layer_set, tense.layer, u) for u in rng.sample(range(len(tense.past_minus_present)), k)]


def tense_experiment(model_dir, analysis: list[Pair], dev: list[Pair], test: list[Pair], work_dir, *,
                     k: int = TOP_K, alphas=ALPHAS, seed: int = 0) -> dict:
    """Rank on ``analysis``, choose α on ``dev``, report the flip rate on ``test`` for the top and random
    neurons."""
    from analysis.engine.loading import load_model

    lm = load_model(model_dir)
    tense = rank_tense_neurons(lm, analysis, work_dir, k=k, seed=seed)
    dev, test = present_tense_sentences(dev), present_tense_sentences(test)
    by_alpha = {alpha: flip_rate(lm, dev, tense.top, tense, alpha) for alpha in alphas}
    alpha = max(alphas, key=lambda a: (by_alpha[a], -a))
    return {
        "neurons": [n.label for n in tense.top], "alpha": alpha, "dev_flip_rate": by_alpha,
        "test_sentences": len(test),
        "flip_rate": flip_rate(lm, test, tense.top, tense, alpha),
        "random_flip_rate": flip_rate(lm, test, random_neurons(tense, len(tense.top), seed), tense, alpha),
        "probe_accuracy": tense.ranking.metrics.get("test_accuracy"),
    }
