"""A ranking of one model's neurons by one method of the engine (``analysis.engine.methods.METHODS``)."""

from __future__ import annotations

from analysis.models import ResultKind, results_root

from analysis.steps.commands import ENGINE, selection_flags
from analysis.steps.registry import CPU, Download, StepType, register
from analysis.steps.storage import open_store, publish_json, read_json


@register
class Ranking(StepType):
    kind = "ranking"
    queue = CPU
    result_kind = ResultKind.RANKING
    inline = True
    downloads = (Download("ranking.csv", "CSV", "text/csv", "csv"),
                 Download("ranking.json", "JSON", "application/json", "json"))

    def compute(self, step, job):
        from analysis.engine.methods import compute_ranking
        from analysis.engine.ranking import Ranking as EngineRanking

        relative = f"rankings/{step.result_key}.json"
        target = results_root() / relative
        if not target.is_file():
            p = step.params
            ranking = compute_ranking(open_store(p["store_key"]), p["method"], neuron_sets=p["neuron_sets"],
                                      layers=p["layers"], seed=p["seed"], bootstrap=p["bootstrap"],
                                      consensus=p.get("consensus"), job=job, **p["options"])
            publish_json(target, ranking.to_dict())
        ranking = EngineRanking.from_dict(read_json(target))  # the engine knows its own keys
        return relative, {"method": ranking.method, "neurons": len(ranking.neuron_ids), "metrics": ranking.metrics}

    def reproduce(self, prov, step, source, seed, neuron):
        p = step.params
        command = [*ENGINE, "rank", *source, *selection_flags(p), "--method", p["method"],
                   "--bootstrap", str(p.get("bootstrap", 0)), *seed, "--json", "ranking.json"]
        if (p.get("options") or {}).get("control"):
            command.append("--control")
        if p.get("consensus"):
            command += ["--consensus", p["consensus"]]
        prov.commands.append(command)
