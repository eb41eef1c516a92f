"""What a result was computed from, and the engine command line that computes it again outside the platform.

Every result shows: the model(s) and corpus with their sha256, the extraction parameters, the method's
parameters and seed, the library versions recorded when it was computed (``Result.meta["versions"]``, written
by :func:`analysis.runs.runner.execute`; results computed before that say "not recorded"), and the commands
of ``python -m analysis.engine`` (see ``analysis/engine/cli.py``) that reproduce it, with the model and corpus
as folders named after their uploads: each step type puts its own command together (``StepType.reproduce``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from django.utils.text import slugify

from analysis.models import Result, Step
from analysis.steps import step_type
from analysis.steps.commands import extraction_flags


@dataclass
class Provenance:
    title: str
    kind: str
    result_key: str
    models: list[dict]  # {"name", "sha256", "architecture", "folder"}
    corpus: dict | None  # {"name", "sha256", "label_column", "file"}
    extraction: dict
    parameters: dict  # the method's own parameters (no store keys)
    seed: int | None
    versions: dict | None  # None: not recorded (computed before versions were kept)
    commands: list[list[str]] = field(default_factory=list)  # argv of each engine command, in order
    notes: list[str] = field(default_factory=list)  # where the command line differs from the platform

    @property
    def command_lines(self) -> list[str]:
        return [shlex.join(command) for command in self.commands]


def _extract_step(step: Step, store_key: str) -> Step | None:
    """The step of ``step``'s run that built the store ``store_key`` (its result key is the store's)."""
    return step if step.result_key == store_key else step.run.steps.filter(result_key=store_key).first()


def _model(pk):
    from projects.models import ModelUpload

    model = ModelUpload.objects.filter(pk=pk).first()
    if model is None:
        return {"name": "deleted model", "sha256": "", "architecture": "", "folder": "MODEL_DIR"}
    return {"name": model.name, "sha256": model.sha256, "architecture": model.architecture,
            "folder": slugify(model.name) or f"model-{model.pk}"}


def _corpus(pk):
    from projects.models import CorpusUpload

    corpus = CorpusUpload.objects.filter(pk=pk).first()
    if corpus is None:
        return {"name": "deleted corpus", "sha256": "", "label_column": "", "file": "CORPUS", "labels": None}
    return {"name": corpus.name, "sha256": corpus.sha256, "label_column": corpus.label_column,
            "file": corpus.metadata.get("word_file") or corpus.name, "labels": corpus.metadata.get("label_file")}


def provenance_of(step: Step, neuron: str | None = None) -> Provenance:
    """The provenance of ``step``'s result (``neuron``: the label the ``stats`` command shows)."""
    p = step.params
    result = Result.objects.filter(key=step.result_key).first()
    versions = (result.meta or {}).get("versions") if result else None
    kind = step_type(step.kind)
    origin = kind.origin(step)  # the step whose store the result comes from (a model ablation: its ranking's)
    store_keys = step_type(origin.kind).store_keys(origin)
    extracts = [e for e in (_extract_step(step, key) for key in store_keys if key) if e is not None]
    models = [_model(e.params.get("model")) for e in extracts]
    corpus = _corpus(extracts[0].params.get("corpus")) if extracts else None
    extraction = dict(extracts[0].params.get("extraction", {})) if extracts else {}
    hidden = {"store_key", "store_keys", "models", "model", "corpus", "extraction", "seed", "ranking_key",
              "test_set", "neuron_sets", "layers"}
    parameters = {k: v for k, v in p.items() if k not in hidden}
    if kind.has_selection:
        parameters = {"neuron_sets": origin.params.get("neuron_sets"),
                      "layers": origin.params.get("layers") or "all", **parameters}
    prov = Provenance(title=step.title, kind=step.kind, result_key=step.result_key, models=models, corpus=corpus,
                      extraction=extraction, parameters=parameters, seed=p.get("seed"), versions=versions)
    if corpus is not None and models:
        _add_commands(prov, step, neuron)
    return prov


def _add_commands(prov: Provenance, step: Step, neuron: str | None) -> None:
    """The commands of the step its result builds on (if any), then its own (``StepType.reproduce``)."""
    kind = step_type(step.kind)
    if (origin := kind.origin(step)) is not step:
        _add_commands(prov, origin, neuron)
    corpus = prov.corpus
    source = [f"./{prov.models[0]['folder']}", f"./{corpus['file']}", *extraction_flags(prov.extraction, corpus)]
    kind.reproduce(prov, step, source, ["--seed", str(step.params.get("seed", 0))], neuron)
