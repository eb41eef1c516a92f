"""Model-level ablation: the model's neurons removed along one ranking of the run, its own task measured on a
test set at each point (``analysis.engine.model_ablation``)."""

from __future__ import annotations

from analysis.models import ResultKind, results_root

from analysis.steps.commands import ENGINE, test_set_arguments
from analysis.steps.registry import GPU, Download, StepType, register
from analysis.steps.storage import open_store, publish_json, read_json, result_path


def read_test_set(test_set_row):
    """The test set upload's sentences (and references), checked against the sha256 it was uploaded with."""
    from analysis.engine.formats import read_test_set as read
    from projects.services.storage import local_folder

    folder = local_folder(test_set_row)
    source, reference = test_set_row.metadata["source_file"], test_set_row.metadata.get("reference_file")
    test_set = read(folder / source, folder / reference if reference else None, source_filename=source,
                    reference_filename=reference)
    if test_set.source_sha256 != test_set_row.sha256:
        raise RuntimeError(f"the test set “{test_set_row.name}” no longer matches what was uploaded (its files "
                           "changed in storage); upload it again")
    return test_set


@register
class ModelAblation(StepType):
    kind = "model_ablation"
    queue = GPU
    result_kind = ResultKind.CURVE
    inline = True
    downloads = (Download("curve.csv", "CSV", "text/csv", "csv"),
                 Download("curve.json", "JSON", "application/json", "json"))

    def origin(self, step):
        return step.run.steps.filter(result_key=step.params.get("ranking_key")).first() or step

    def compute(self, step, job):
        """Remove the model's neurons cumulatively along one ranking and measure its own task on the test set
        at each percent removed; an encoder without a task of its own is measured by a probe's accuracy."""
        from analysis.engine.loading import load_model
        from analysis.engine.model_ablation import ablation_curves, has_own_task, probe_task_through_model, task_for
        from analysis.engine.ranking import Ranking
        from projects.models import ModelUpload, TestSetUpload
        from projects.services.storage import local_folder

        relative = f"curves/{step.result_key}.json"
        target = results_root() / relative
        if not target.is_file():
            p = step.params
            ranking_file = result_path(f"rankings/{p['ranking_key']}.json")
            if not ranking_file.is_file():
                raise RuntimeError(f"the ranking {p['ranking_key'][:12]} is missing; retry the run to rebuild it")
            ranking = Ranking.from_dict(read_json(ranking_file))
            test_set = read_test_set(TestSetUpload.objects.get(pk=p["test_set"]))
            model = ModelUpload.objects.get(pk=p["model"])
            lm = load_model(local_folder(model), sha256=model.sha256)
            job.log(f"model: {lm.info.architecture} on {lm.device}; test set: {len(test_set.sources):,} sentences")
            if has_own_task(lm):
                task = task_for(lm, texts=test_set.sources, references=test_set.references, log=job.log)
                job.log(f"metric: {task.name} {task.primary}")
            else:
                rp = self.origin(step).params
                task = probe_task_through_model(lm, open_store(rp["store_key"]), neuron_sets=rp["neuron_sets"],
                                                layers=rp["layers"], seed=p["seed"],
                                                aggregation=step.run.request.get("aggregation", "last"),
                                                model_name=f"“{model.name}”", job=job)
            curve = ablation_curves(lm, ranking, task, percents=p["percents"], modes=p["modes"],
                                    random_seeds=p["random_seeds"], seed=p["seed"], job=job)
            publish_json(target, curve)
        data = read_json(target)
        return relative, {"task": data.get("task"), "primary": data.get("primary"), "baseline": data.get("baseline"),
                          "total_neurons": data.get("total_neurons")}

    def reproduce(self, prov, step, source, seed, neuron):
        p = step.params
        prov.commands.append([*ENGINE, "ablate", source[0], "ranking.json", *test_set_arguments(p.get("test_set")),
                              "--steps", str(len(p.get("percents", [])) + 1), "--json", "curve.json"])
        prov.notes.append("ablate spaces its points evenly (--steps) and has no random orders: the platform's "
                          f"percents {p.get('percents')} and {p.get('random_seeds', 0)} random order(s) are not "
                          "command-line options, so the points differ; the curve along the ranking is the same.")
