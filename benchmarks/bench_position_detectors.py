"""Cross-model correlation's top neurons in the translation example track word position, not tense (issue #11).
Run on demand (about 10 s):

    python -m benchmarks.bench_position_detectors

The three committed translation models (``analysis/examples/models/translation-seed*``) over the example's corpus
(``feats:Tense``), the last encoder layer as the example project ranks it: for each cross-model ranking (MaxCorr,
MinCorr, LinReg, SVCCA; seed 0's ranking) and for seed 0's LCA ranking for Tense, |Pearson r| between each top-10
neuron's activation and the word's position in its sentence (1 = first word), against all the layer's neurons.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from analysis.engine.cli import read_corpus
from analysis.engine.crossmodel import crossmodel_rankings
from analysis.engine.extract import ExtractionParams, extract_activations
from analysis.engine.methods import compute_ranking
from analysis.examples import build, catalogue
from analysis.examples.train import Sizes

TOP = 10


def main() -> None:
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-position-"))
    corpus_file, _ = catalogue._grammar_corpus(work, False, "grammar-english-tense.conllu")
    corpus = read_corpus(corpus_file, "feats:Tense", None)
    params = ExtractionParams(neuron_sets=("enc.hidden",), label_column="feats:Tense")
    layer = Sizes().layers
    stores = [extract_activations(build.model_dir("translation", seed), corpus, work / "stores", params)
              for seed in build.SEEDS]
    crossmodel = crossmodel_rankings([s.features(["enc.hidden"], [layer]) for s in stores])
    store = stores[0]
    position = np.arange(store.n_words) - store.sentence_offsets[store.sentence_index] + 1

    def with_position(neuron) -> float:
        values = np.asarray(store.array(neuron.set, neuron.layer)[:, neuron.unit], dtype=np.float64)
        return abs(float(np.corrcoef(values, position)[0, 1]))

    rankings = {"lca (Tense)": compute_ranking(store, "lca", neuron_sets=["enc.hidden"], layers=[layer], seed=0,
                                               bootstrap=0)}
    rankings.update({method: per_model[0] for method, per_model in crossmodel.items()})
    every = [with_position(n) for n in rankings["lca (Tense)"].neuron_ids]
    print(f"translation seed 0, enc.L{layer} ({len(every)} neurons), {store.n_words:,} words: |r| with word position")
    print(f"{'ranking':<12} {'top-10 mean':>11} {'top-10 max':>10}  each of the top 10")
    print(f"{'every neuron':<12} {np.mean(every):>11.2f} {max(every):>10.2f}  (median {np.median(every):.2f})")
    for name, ranking in rankings.items():
        top = [with_position(ranking.neuron_ids[int(i)]) for i in ranking.order[:TOP]]
        print(f"{name:<12} {np.mean(top):>11.2f} {max(top):>10.2f}  {' '.join(f'{r:.2f}' for r in top)}")


if __name__ == "__main__":
    main()
