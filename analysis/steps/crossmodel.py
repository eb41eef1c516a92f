"""A cross-model ranking: one method over the stores of several models on the same corpus."""

from __future__ import annotations

from analysis.models import ResultKind, results_root

from analysis.steps.commands import ENGINE, extraction_flags, selection_flags
from analysis.steps.registry import CPU, Download, StepType, register
from analysis.steps.storage import open_store, publish_json, read_json


@register
class CrossModel(StepType):
    kind = "crossmodel"
    queue = CPU
    result_kind = ResultKind.RANKING
    inline = True
    downloads = (Download("ranking.csv", "CSV (all models)", "text/csv", "csv"),
                 Download("ranking.json", "JSON", "application/json", "json"))

    def compute(self, step, job):
        """One cross-model method over every store of the run; models are named by store key (the result is
        shared by every run over the same stores, whatever the models were called there)."""
        from analysis.engine.crossmodel import method_named

        relative = f"rankings/{step.result_key}.json"
        target = results_root() / relative
        if not target.is_file():
            p = step.params
            models = [open_store(key).features(p["neuron_sets"], p["layers"]) for key in p["store_keys"]]
            rankings = method_named(p["method"]).rank(models, p["store_keys"], job, **p["options"])
            publish_json(target, {"method": p["method"], "store_keys": p["store_keys"], "options": p["options"],
                                  "rankings": [dict(r.to_dict(), store_key=key)
                                               for key, r in zip(p["store_keys"], rankings)]})
        data = read_json(target)
        return relative, {"method": data["method"], "models": len(data["rankings"]),
                          "neurons": [len(r["neurons"]) for r in data["rankings"]]}

    def reproduce(self, prov, step, source, seed, neuron):
        p, corpus = step.params, prov.corpus
        folders = [f"./{m['folder']}" for m in prov.models]
        prov.commands.append([*ENGINE, "crossmodel", f"./{corpus['file']}", *folders, "--methods", p["method"],
                              *extraction_flags(prov.extraction, corpus), *selection_flags(p)])
        if p.get("options"):
            prov.notes.append(f"the command line has no option for {', '.join(sorted(p['options']))}: it uses "
                              "the engine's default.")
