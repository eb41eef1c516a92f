"""Scale-free probeless, binned mutual information and fast neuron statistics (#9 items 3, 4, 6): old vs new.

    .venv/bin/python -m benchmarks.bench_science_fast            # MiniLM over UD dev, hidden + MLP
    .venv/bin/python -m benchmarks.bench_science_fast --quick    # first 300 sentences
    .venv/bin/python -m benchmarks.bench_science_fast --store DIR  # reuse an extracted store

Everything is measured side by side in one run. "Old" statistics are the implementation of commit f286b31, the
one-sort-per-column version before the packed-pair sort (read from git, so the comparison needs the repository's
history; the first version, 3f42d56, took 27.6 s where f286b31 took 15.8 s); "old" mutual information is scikit-learn's
nearest-neighbour ``mutual_info_classif`` on the first 32 units, extrapolated to the layer (it did not finish
a layer in 200 s). Planted units: four units on a 0.01 scale (a permutation of the label ids plus unit noise) appended to
layer 3.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_extract  # noqa: E402

OLD_STATS_COMMIT = "f286b31"
LAYER = 3


def old_stats_module():
    source = subprocess.run(["git", "show", f"{OLD_STATS_COMMIT}:analysis/engine/stats.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("analysis.engine._stats_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "analysis.engine"
    sys.modules[spec.name] = module
    exec(compile(source, "stats_before.py", "exec"), module.__dict__)
    return module


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def cpu_timed(fn):
    start = time.process_time()
    value = fn()
    return value, time.process_time() - start


def top_jaccard(a, b, fraction=0.01) -> float:
    k = max(1, int(round(fraction * len(a))))
    x, y = set(a[:k].tolist()), set(b[:k].tolist())
    return len(x & y) / len(x | y)


def planted_layer(store, train, seed=0):
    """Layer 3 (float32, in memory) with four label-carrying units on a 0.01 scale appended."""
    from analysis.engine.features import as_features

    x = np.asarray(store.array("hidden", LAYER), dtype=np.float32)
    labels = store.labels
    rng = np.random.default_rng(seed)
    ids = np.where(labels >= 0, labels, 0)
    # each unit encodes the label through its own random permutation of the label ids, on a 0.01 scale
    planted = [0.01 * (rng.normal(size=len(x)) + rng.permutation(len(store.label_names))[ids]) for _ in range(4)]
    return as_features(np.column_stack([x] + planted).astype(np.float32)), x.shape[1]


def run(store, stats_only: bool = False) -> list[tuple[str, str, str]]:
    from sklearn.feature_selection import mutual_info_classif

    from analysis.engine.baselines import mean_difference_ranking, variance_ranking
    from analysis.engine.probeless import probeless_ranking
    from analysis.engine.splits import split_by_sentence
    from analysis.engine.univariate import mutual_info_ranking

    rows = []
    if stats_only:
        return stats_rows(store, rows)
    split = split_by_sentence(store.sentence_offsets, test_fraction=0.2, dev_fraction=0.1)
    train = split.train
    layer = store.features("hidden", [LAYER])
    names, labels = store.label_names, store.labels

    variance = variance_ranking(layer, train).order
    raw = probeless_ranking(layer, labels, names, train, standardise=False).order
    standard = probeless_ranking(layer, labels, names, train).order
    rows.append(("probeless top 1 % Jaccard with variance, layer 3", f"{top_jaccard(raw, variance):.2f} (raw)",
                 f"{top_jaccard(standard, variance):.2f} (standardised)"))

    features, first = planted_layer(store, train)
    planted = set(range(first, features.shape[1]))
    for label, rank in (("probeless", probeless_ranking), ("mean difference", mean_difference_ranking)):
        ranks = {}
        for standardise in (False, True):
            order = rank(features, labels, names, train, standardise=standardise).order
            ranks[standardise] = sorted(int(np.flatnonzero(order == unit)[0]) + 1 for unit in planted)
        rows.append((f"{label}: ranks of 4 planted 0.01-scale units of {features.shape[1]}",
                     f"{ranks[False]} (raw)", f"{ranks[True]} (standardised)"))

    labelled = train[labels[train] >= 0]
    subset = np.asarray(layer.rows(np.sort(labelled)))[:, :32]
    _, seconds = timed(lambda: mutual_info_classif(subset, labels[np.sort(labelled)], n_neighbors=3, random_state=0))
    _, new_seconds = timed(lambda: mutual_info_ranking(layer, labels, names, train))
    rows.append((f"mutual information, layer 3 ({layer.shape[1]} units, {len(labelled):,} words)",
                 f"{seconds * layer.shape[1] / 32:.0f} s (kNN, extrapolated from 32 units)",
                 f"{new_seconds:.1f} s (binned, incl. per-label)"))

    return stats_rows(store, rows)


def stats_rows(store, rows):
    from analysis.engine.stats import compute_neuron_stats

    everything = store.features()
    args = (everything, store.words, store.sentence_offsets, store.labels, store.label_names)
    old = old_stats_module()
    before = rss_mib()
    (_, old_seconds), old_cpu = cpu_timed(lambda: timed(lambda: old.compute_neuron_stats(*args)))
    old_peak = rss_mib()
    (_, new_seconds), new_cpu = cpu_timed(lambda: timed(lambda: compute_neuron_stats(*args)))
    rows.append((f"neuron statistics, {everything.shape[1]:,} units × {len(everything):,} words",
                 f"{old_seconds:.1f} s (CPU {old_cpu:.1f} s)", f"{new_seconds:.1f} s (CPU {new_cpu:.1f} s)"))
    rows.append(("peak RSS (MiB) before / after old / after new statistics", f"{before:.0f} / {old_peak:.0f}",
                 f"{rss_mib():.0f}"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first 300 sentences only")
    parser.add_argument("--store", help="an extracted MiniLM store (hidden + mlp) to reuse")
    parser.add_argument("--stats-only", action="store_true", help="only the neuron statistics rows")
    args = parser.parse_args()
    from analysis.engine.store import ActivationStore

    with tempfile.TemporaryDirectory() as workdir:
        if args.store:
            store = ActivationStore.open(args.store)
        else:
            from analysis.engine.extract import ExtractionParams, extract_activations
            from analysis.engine.loading import load_model

            corpus = bench_extract.load_corpus(300 if args.quick else None)
            store, seconds = timed(lambda: extract_activations(
                load_model(bench_extract.minilm_dir()), corpus, Path(workdir) / "stores",
                ExtractionParams(label_column=corpus.label_column)))
            print(f"(extracted {store.n_words:,} words in {seconds:.0f} s: {store.path})")
        rows = run(store, args.stats_only)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'old':<40}  new")
    for name, old, new in rows:
        print(f"{name:<{width}}  {old:<40}  {new}")


if __name__ == "__main__":
    main()
