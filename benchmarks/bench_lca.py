"""LCA old (dense λ1) vs new default, consensus ranking, and streamed probe training; prints tables.

    .venv/bin/python -m benchmarks.bench_lca [--store PATH] [--quick] [--only lca] [--no-stability]

Issue #9 items 1, 2, 5 on UD EWT dev, all-MiniLM-L6-v2, layer 3, UPOS (the engine's own sentence split: first
80 % train with its last 10 % as dev for λ2, last 20 % held out). Three LCA settings: the dense and the default λ1
with the subgradient L1 step, and the default λ1 with the proximal step (``l1_step="proximal"``: exact zeros).
- neurons per label at 10 / 30 / 50 % of weight mass, closed-class (PUNCT DET ADP CCONJ PRON) vs open (NOUN VERB
  ADJ); held-out accuracy; probe ablation (zero-out) keeping the top / random / bottom 10 % of neurons;
- top-10 stability over bootstrap resamples: single resamples (plain) vs the mean-rank consensus (split-half);
- top 1 % overlap (Jaccard) with ANOVA and probeless;
- probe training time on the corpus ×4 (rows repeated) vs ×1 with a small memory budget (streamed path).
Everything is measured side by side in one run; ``--quick`` uses fewer resamples and epochs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

CLOSED = ("PUNCT", "DET", "ADP", "CCONJ", "PRON")
OPEN = ("NOUN", "VERB", "ADJ")


def _table(rows: list[dict]) -> None:
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r[k]).ljust(widths[k]) for k in keys))
    print()


def lca_rows(store, quick: bool, stability: bool = True) -> list[dict]:
    from analysis.engine.confidence import jaccard, resolve_k
    from analysis.engine.lca import DEFAULT_L1, DENSE_L1, linguistic_correlation
    from analysis.engine.methods import compute_ranking
    from analysis.engine.probe_ablation import probe_ablation
    from analysis.engine.splits import split_by_sentence

    labels = np.asarray(store.labels, dtype=np.int64)
    split = split_by_sentence(store.sentence_offsets, test_fraction=0.2, dev_fraction=0.1)
    features = store.features("hidden", layers=[3])
    n_boot = 4 if quick else 10
    one_percent = resolve_k("1%", features.shape[1])
    others = {name: compute_ranking(store, name, layers=[3]).order[:one_percent] for name in ("anova", "probeless")}
    rows = []
    settings = (("old (dense)", "lca_dense", DENSE_L1, "subgradient"),
                ("new default", "lca", DEFAULT_L1, "subgradient"),
                ("proximal L1 step", "lca", DEFAULT_L1, "proximal"))
    for name, method, l1, l1_step in settings:
        ranking, probe = linguistic_correlation(features, labels, label_names=store.label_names, train=split.train,
                                                dev=split.dev, test=split.test, l1=l1, l1_step=l1_step,
                                                return_probe=True)
        needed = ranking.metrics["neurons_per_label_at_mass"]
        row = {"setting": f"{name} λ1={l1:g}", "held_out_acc": f"{ranking.metrics['test_accuracy']:.4f}",
               "zero_weights": f"{float(np.mean(probe.weight == 0)):.2f}"}
        for mass in ("0.1", "0.3", "0.5"):
            row[f"closed@{mass}"] = "/".join(str(needed[mass][c]) for c in CLOSED)
            row[f"open@{mass}"] = "/".join(str(needed[mass][c]) for c in OPEN)
            row[f"max closed<min open@{mass}"] = max(needed[mass][c] for c in CLOSED) < min(needed[mass][c] for c in OPEN)
        ablation = probe_ablation(probe, features, labels, ranking.order, train=split.train, test=split.test,
                                  percents=(10,), modes=("zero_out",))
        for selection in ("top", "random", "bottom"):
            point = next(p for p in ablation.points if p["selection"] == selection)
            row[f"{selection}10%"] = f"{point['accuracy']:.3f}"
        if stability:
            boot = compute_ranking(store, method, layers=[3], bootstrap=n_boot, consensus="mean_rank",
                                   epochs=10 if quick else None, l1_step=l1_step)
            row["top10_stab_plain"] = f"{boot.confidence['stability']['10']:.2f}"
            row["top10_stab_consensus"] = f"{boot.confidence['consensus']['stability']['10']:.2f}"
        for other, top in others.items():
            row[f"top1%_jacc_{other}"] = f"{jaccard(ranking.order[:one_percent], top):.2f}"
        rows.append(row)
    return rows


def streaming_rows(store, quick: bool) -> list[dict]:
    from analysis.engine.features import as_features
    from analysis.engine.probe import train_probe

    labels = np.asarray(store.labels, dtype=np.int64)
    x = store.features("hidden", layers=[3]).rows(slice(None))
    n = len(x)
    test = np.arange(int(0.8 * n), n)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for times in (1, 4):
            path = Path(workdir) / f"x{times}.npy"
            np.save(path, np.tile(x, (times, 1)).astype(np.float16))
            tiled = as_features(np.load(path, mmap_mode="r"), layer=3)
            tiled_labels = np.tile(labels, times)
            train = np.concatenate([np.arange(int(0.8 * n)) + k * n for k in range(times)])
            started = time.perf_counter()
            probe = train_probe(tiled, tiled_labels, label_names=store.label_names, train=train, test=test, l2=1e-3,
                                epochs=5 if quick else 20, memory_budget_mb=4.0)
            rows.append({"corpus": f"×{times}", "train_rows": len(train), "seconds": time.perf_counter() - started,
                         "held_out_acc": f"{probe.metrics['test_accuracy']:.4f}"})
    base = rows[0]["seconds"]
    for row in rows:
        row["time_ratio"] = f"{row['seconds'] / base:.2f}"
        row["seconds"] = f"{row['seconds']:.1f}"
    return rows


def main() -> None:
    import torch

    from benchmarks.bench_probe import open_or_extract

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="an existing MiniLM store (hidden set); extracted when omitted")
    parser.add_argument("--quick", action="store_true", help="fewer resamples and epochs")
    parser.add_argument("--only", choices=("lca", "streaming"), help="run one part")
    parser.add_argument("--no-stability", action="store_true", help="skip the bootstrap stability columns")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as workdir:
        store, _ = open_or_extract(args.store, workdir)
        if args.only != "streaming":
            _table(lca_rows(store, args.quick, stability=not args.no_stability))
        if args.only != "lca":
            _table(streaming_rows(store, args.quick))


if __name__ == "__main__":
    main()
