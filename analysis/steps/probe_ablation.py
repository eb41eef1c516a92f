"""Probe-level ablation: the lca probe trained, then its neurons kept top / random / bottom first."""

from __future__ import annotations

from analysis.models import ResultKind, results_root

from analysis.steps.commands import ENGINE, selection_flags
from analysis.steps.registry import CPU, Download, StepType, register
from analysis.steps.storage import open_store, publish_json, read_json


@register
class ProbeAblation(StepType):
    kind = "probe_ablation"
    queue = CPU
    result_kind = ResultKind.CURVE
    inline = True
    downloads = (Download("curve.csv", "CSV", "text/csv", "csv"),
                 Download("curve.json", "JSON", "application/json", "json"))

    def compute(self, step, job):
        """Train the lca probe on the training sentences, then ablate its neurons along its own ranking, scoring
        every point on the test sentences (the same split and seed as the lca ranking step)."""
        from analysis.engine.probe_ablation import train_and_ablate
        from analysis.engine.splits import split_by_sentence

        relative = f"curves/{step.result_key}.json"
        target = results_root() / relative
        if not target.is_file():
            p = step.params
            store = open_store(p["store_key"])
            split = split_by_sentence(store.sentence_offsets, seed=p["seed"])
            curve = train_and_ablate(store.features(p["neuron_sets"], p["layers"]), store.labels,
                                     label_names=store.label_names, split=split, percents=p["percents"],
                                     modes=p["modes"], random_seeds=p["random_seeds"], seed=p["seed"], job=job)
            publish_json(target, curve.to_dict())
        data = read_json(target)
        return relative, {"baseline_accuracy": data.get("baseline_accuracy"), "n_neurons": data.get("n_neurons")}

    def reproduce(self, prov, step, source, seed, neuron):
        p = step.params
        prov.commands.append([
            *ENGINE, "probe-ablate", *source, *selection_flags(p),
            "--percents", ",".join(f"{x:g}" for x in p.get("percents", [])),
            "--modes", ",".join(p.get("modes", [])), "--random-seeds", str(p.get("random_seeds", 1)), *seed])
