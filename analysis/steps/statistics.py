"""Neuron statistics: each neuron's summary over the corpus, per label, its top words and contexts."""

from __future__ import annotations

from pathlib import Path

from analysis.models import ResultKind, results_root

from analysis.steps.commands import CACHE_DIR, ENGINE
from analysis.steps.registry import CPU, Download, StepType, register
from analysis.steps.storage import open_store, publish_folder


@register
class Statistics(StepType):
    kind = "statistics"
    queue = CPU
    result_kind = ResultKind.STATISTICS
    downloads = (Download("statistics.csv", "CSV summary per neuron", "text/csv", "csv"),
                 Download("stats.npz", "raw arrays (npz)", "application/octet-stream", "npz"),
                 Download("stats.json", "raw metadata (JSON)", "application/json", "json"))

    def compute(self, step, job):
        from analysis.engine.stats import compute_neuron_stats

        relative = f"statistics/{step.result_key}"
        target = results_root() / relative
        if not target.is_dir():
            p = step.params
            store = open_store(p["store_key"])

            def build(folder: Path) -> None:
                stats = compute_neuron_stats(store.features(p["neuron_sets"], p["layers"]), store.words,
                                             store.sentence_offsets, store.labels, store.label_names, job=job)
                stats.save(folder / "stats")

            publish_folder(build, target)
        return relative, {"files": sorted(p.name for p in target.iterdir())}

    def reproduce(self, prov, step, source, seed, neuron):
        prov.commands.append([*ENGINE, "extract", *source])
        prov.commands.append([*ENGINE, "stats", f"{CACHE_DIR}/stores/{step.params['store_key']}", neuron or "L0:0"])
        prov.notes.append("stats prints the statistics of the neurons named (any labels of the run's sets).")
