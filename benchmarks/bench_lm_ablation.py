"""Model-level ablation of the example causal LMs (issue #11): where does the random order fall between top-first
and bottom-first? Run on demand (about 20 s on 2 cores):

    python -m benchmarks.bench_lm_ablation [--seeds 0 1 2] [--percent 50] [--sentences 150]

For each committed causal LM (``analysis/examples/models/causal-lm-seed*``) over the example's generated corpus
(UPOS labels, as the example project uses), every combination of neuron set (hidden states, MLP), ranking (lca,
probeless) and operation (zero, corpus mean) removes ``--percent`` % of the neurons top-first, bottom-first and in
one random order, and prints the per-token loss on the example's held-out sentences, with the layers the removed
halves come from (a ranking concentrates its ends in some layers; a random order spreads over all of them).
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import numpy as np

from analysis.engine.extract import ExtractionParams, extract_activations
from analysis.engine.cli import read_corpus
from analysis.engine.loading import load_model
from analysis.engine.methods import compute_ranking
from analysis.engine.model_ablation import ablation_curve, task_for
from analysis.examples import build, catalogue


def layer_counts(neurons) -> str:
    counts = collections.Counter(n.layer for n in neurons)
    return "/".join(str(counts[layer]) for layer in sorted(counts))


def main(seeds: list[int], percent: float, sentences: int) -> None:
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-lm-ablation-"))
    corpus_file, _ = catalogue._grammar_corpus(work, False, "grammar-english.conllu")
    test_file, _ = catalogue._test_set(work, False, references=False)
    corpus = read_corpus(corpus_file, "upos", None)
    texts = test_file.read_text(encoding="utf-8").splitlines()[:sentences]
    print(f"per-token loss with {percent:g} % of the neurons removed, {len(texts)} held-out sentences; "
          "layers: removed neurons per layer (L0/L1/…)")
    header = f"{'seed':>4} {'set':<7} {'ranking':<10} {'op':<5} {'baseline':>8} {'top':>7} {'random':>7} " \
             f"{'bottom':>7}  {'top layers':<12} {'bottom layers':<13} random between"
    print(header)
    print("-" * len(header))
    between = []
    for seed in seeds:
        folder = build.model_dir("causal_lm", seed)
        lm = load_model(folder)
        task = task_for(lm, texts=texts)
        for neuron_set in ("hidden", "mlp"):
            params = ExtractionParams(neuron_sets=(neuron_set,), label_column="upos")
            store = extract_activations(lm, corpus, work / "stores", params)
            for method in ("lca", "probeless"):
                ranking = compute_ranking(store, method, neuron_sets=[neuron_set], seed=0, bootstrap=0)
                best_first = [ranking.neuron_ids[int(i)] for i in ranking.order]
                count = round(len(best_first) * percent / 100)
                means = {n: float(np.asarray(store.array(n.set, n.layer)[:, n.unit], dtype=np.float64).mean())
                         for n in ranking.neuron_ids}
                for operation in ("zero", "mean"):
                    curve = ablation_curve(lm, ranking, task, operation=operation, means=means, steps=[count],
                                           orders=("top", "random", "bottom"), seed=seed)
                    loss = {order: curve["curves"][order]["loss"][-1] for order in curve["curves"]}
                    ok = min(loss["top"], loss["bottom"]) <= loss["random"] <= max(loss["top"], loss["bottom"])
                    between.append(ok)
                    print(f"{seed:>4} {neuron_set:<7} {method:<10} {operation:<5} {curve['baseline']['loss']:>8.3f} "
                          f"{loss['top']:>7.3f} {loss['random']:>7.3f} {loss['bottom']:>7.3f}  "
                          f"{layer_counts(best_first[:count]):<12} {layer_counts(best_first[::-1][:count]):<13} "
                          f"{'yes' if ok else 'no'}")
    print(f"\nrandom between top-first and bottom-first in {sum(between)} of {len(between)} settings")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--percent", type=float, default=50)
    parser.add_argument("--sentences", type=int, default=150)
    arguments = parser.parse_args()
    main(arguments.seeds, arguments.percent, arguments.sentences)
