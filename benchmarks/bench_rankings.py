"""Time every ranking, a bootstrap and the neuron statistics on one Features; prints a table.

    .venv/bin/python -m benchmarks.bench_rankings            # synthetic: 25k words x 2,688 units (7 x 384)
    .venv/bin/python -m benchmarks.bench_rankings --words 5000 --layers 2

``run(features, labels, ...)`` takes any Features (e.g. a real activation store) and returns one dict per
timed step. Cross-model methods compare the first half of the layers with the second half as two "models".
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from analysis.engine.baselines import binary_concept_ranking, mean_difference_ranking, variance_ranking
from analysis.engine.confidence import bootstrap_confidence, method_agreement
from analysis.engine.crossmodel import linreg_rankings, maxcorr_mincorr_rankings, svcca_rankings
from analysis.engine.features import Features
from analysis.engine.neurons import layer_neurons
from analysis.engine.probeless import probeless_ranking
from analysis.engine.stats import compute_neuron_stats
from analysis.engine.univariate import anova_ranking, mutual_info_ranking


def synthetic(words: int = 25_000, layers: int = 7, units: int = 384, n_labels: int = 17, seed: int = 0):
    """float16 layer blocks like the store's, 17 labels, a few planted units, sentences of 5-30 words."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_labels, words).astype(np.int32)
    blocks = []
    for layer in range(layers):
        block = rng.normal(size=(words, units)).astype(np.float32)
        block[:, layer] += labels * 0.5
        if layer >= layers // 2:  # second "model" copies a few units of the first
            block[:, 10:13] = blocks[layer - layers // 2][:, 20:23] * np.array([1.0, -2.0, 3.0]) + \
                0.3 * rng.normal(size=(words, 3))
        blocks.append(block.astype(np.float16))
    ids = [n for layer in range(layers) for n in layer_neurons("hidden", layer, units)]
    lengths = rng.integers(5, 31, words // 5)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    offsets = np.append(offsets[offsets < words], words)
    vocabulary = np.array([f"w{i}" for i in range(5000)], dtype=object)
    words_list = list(vocabulary[rng.zipf(1.3, words) % 5000])
    return Features(blocks, ids), labels, [f"L{i:02d}" for i in range(n_labels)], offsets, words_list


def _split_models(features: Features):
    half = len(features.blocks) // 2
    width = sum(b.shape[1] for b in features.blocks[:half])
    return [Features(features.blocks[:half], features.neuron_ids[:width]),
            Features(features.blocks[half:], features.neuron_ids[width:])]


def run(features: Features, labels, label_names, sentence_offsets=None, words=None, n_boot: int = 20,
        mutual_info_columns: int = 64, crossmodel: bool = True) -> list[dict]:
    results = []

    def timed(name, fn, note=""):
        start = time.perf_counter()
        value = fn()
        results.append({"step": name, "seconds": time.perf_counter() - start, "note": note})
        return value

    n, width = features.shape
    anova = timed("univariate ANOVA F", lambda: anova_ranking(features, labels, label_names))
    if mutual_info_columns:
        subset = features.select(np.arange(min(mutual_info_columns, width)))
        timed(f"univariate mutual info ({subset.shape[1]} units)",
              lambda: mutual_info_ranking(subset, labels, label_names, per_label=False),
              "every row, 16 equal-frequency bins per unit (binned plug-in estimate)")
    probeless = timed("probeless", lambda: probeless_ranking(features, labels, label_names))
    timed("binary concept AP (one label)", lambda: binary_concept_ranking(features, label_names[0], labels,
                                                                          label_names))
    timed("baseline variance", lambda: variance_ranking(features))
    timed("baseline |mean difference|", lambda: mean_difference_ranking(features, labels, label_names))
    if crossmodel and len(features.blocks) >= 2:
        models = _split_models(features)
        shape = f"{models[0].shape[1]} vs {models[1].shape[1]} units"
        timed("cross-model MaxCorr + MinCorr", lambda: maxcorr_mincorr_rankings(models), shape)
        timed("cross-model LinReg", lambda: linreg_rankings(models), shape)
        timed("cross-model SVCCA", lambda: svcca_rankings(models), shape)
    if sentence_offsets is not None:
        timed(f"bootstrap ANOVA ({n_boot} resamples)",
              lambda: bootstrap_confidence(lambda rows: anova_ranking(features, labels, label_names, rows=rows),
                                           sentence_offsets, n_boot=n_boot, ranking=anova))
        timed(f"bootstrap probeless ({n_boot} resamples)",
              lambda: bootstrap_confidence(lambda rows: probeless_ranking(features, labels, label_names, rows=rows),
                                           sentence_offsets, n_boot=n_boot, ranking=probeless))
    agreement = timed("method agreement (k=1%)", lambda: method_agreement([anova, probeless], k="1%"))
    results[-1]["note"] = f"jaccard anova/probeless {agreement['jaccard'][0][1]:.2f}"
    timed("neuron statistics", lambda: compute_neuron_stats(features, words, sentence_offsets, labels, label_names))
    for row in results:
        row["words"], row["units"] = n, width
    return results


def print_table(results: list[dict]) -> None:
    print(f"{'step':44s} {'seconds':>9s}  note")
    for row in results:
        print(f"{row['step']:44s} {row['seconds']:9.2f}  {row['note']}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"{results[0]['words']} words x {results[0]['units']} units")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=25_000)
    parser.add_argument("--layers", type=int, default=7)
    parser.add_argument("--units", type=int, default=384)
    parser.add_argument("--boot", type=int, default=20)
    args = parser.parse_args()
    features, labels, names, offsets, words = synthetic(args.words, args.layers, args.units)
    print_table(run(features, labels, names, offsets, words, n_boot=args.boot))


if __name__ == "__main__":
    main()
