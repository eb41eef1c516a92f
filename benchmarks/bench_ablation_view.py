"""Time what the Ablation view computes per request for one curve: reading the curve JSON into lines, drawing
the SVG chart, and writing the CSV; prints a table of p50 / p95 in milliseconds.

    .venv/bin/python -m benchmarks.bench_ablation_view                 # MiniLM-sized: 2,688 neurons, 11 points
    .venv/bin/python -m benchmarks.bench_ablation_view --points 21 --seeds 10

The curves are synthetic (the timing depends on their size, not their values): a probe-ablation document with
both modes and a model-level one with two metrics, shaped as ``analysis.steps`` writes them. The page's
database reads (the run, its steps, the result rows) are not included; the curve JSON itself is cached per
process by ``analysis.workspace.document_of``, so this is the work left on a warm request.
"""

from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

import numpy as np


def probe_document(n_neurons: int, points: int, seeds: int, rng) -> dict:
    percents = np.linspace(100 / points, 100, points).round(1).tolist()
    curves = {}
    for mode in ("zero_out", "retrain"):
        curves[mode] = {}
        for selection in ("top", "random", "bottom"):
            kept = [max(1, round(n_neurons * p / 100)) for p in percents]
            accuracy = rng.uniform(0.3, 0.95, len(kept)).tolist()
            curves[mode][selection] = {
                "kept": kept, "kept_percent": [100 * k / n_neurons for k in kept],
                "removed": [n_neurons - k for k in kept], "removed_percent": [100 * (n_neurons - k) / n_neurons
                                                                               for k in kept],
                "accuracy": accuracy, "accuracy_std": [0.01] * len(kept),
                "accuracy_min": [a - 0.02 for a in accuracy], "accuracy_max": [a + 0.02 for a in accuracy]}
    return {"n_neurons": n_neurons, "baseline_accuracy": 0.95, "majority_accuracy": 0.2, "curves": curves,
            "params": {"random_seeds": seeds}}


def model_document(n_neurons: int, points: int, seeds: int, rng) -> dict:
    counts = np.round(np.linspace(0, n_neurons, points)).astype(int).tolist()

    def values():
        return {"loss": rng.uniform(2, 8, points).tolist(), "accuracy": rng.uniform(0, 1, points).tolist()}

    return {"task": "masked-lm", "metrics": ["loss", "accuracy"], "primary": "loss",
            "higher_is_better": {"loss": False, "accuracy": True}, "total_neurons": n_neurons,
            "x": {"count": counts, "percent": [100 * c / n_neurons for c in counts]},
            "baseline": {"loss": 2.0, "accuracy": 0.6},
            "curves": {"top": values(), "bottom": values(), "random": values()},
            "random_curves": [values() for _ in range(seeds)], "params": {"ranking_method": "probeless"}}


def timed(function, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neurox_site.settings")
    import django

    django.setup()
    from analysis.workspace.ablation import presenter as ablation_presenter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=7 * 384)
    parser.add_argument("--points", type=int, default=11)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    step = SimpleNamespace(pk=1, title="Ablation along a ranking", params={"method": "lca"})
    probe = probe_document(args.neurons, args.points, args.seeds, rng)
    model = model_document(args.neurons, args.points, args.seeds, rng)
    curve = ablation_presenter._model_curves(step, model)[0]
    directions = list(ablation_presenter.DIRECTIONS)
    rows = [
        ("probe JSON → 2 curves", timed(lambda: ablation_presenter._probe_curves(step, probe), args.repeats)),
        ("model JSON → 2 curves", timed(lambda: ablation_presenter._model_curves(step, model), args.repeats)),
        ("one chart (SVG)", timed(lambda: ablation_presenter.chart_svg(curve, directions), args.repeats)),
        ("one CSV", timed(lambda: ablation_presenter.curve_csv(curve), args.repeats)),
    ]
    print(f"{args.neurons:,} neurons, {args.points} points, {args.seeds} random seeds, {args.repeats} repeats")
    print(f"{'work':<24}{'p50 ms':>10}{'p95 ms':>10}")
    for name, (p50, p95) in rows:
        print(f"{name:<24}{p50:>10.3f}{p95:>10.3f}")


if __name__ == "__main__":
    main()
