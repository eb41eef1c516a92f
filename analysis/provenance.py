"""What a result was computed from, and the engine command line that computes it again outside the platform.

Every result shows: the model(s) and corpus with their sha256, the extraction parameters, the method's
parameters and seed, the library versions recorded when it was computed (``Result.meta["versions"]``, written
by :func:`analysis.computations.execute`; results computed before that say "not recorded"), and the commands
of ``python -m analysis.engine`` (see ``analysis/engine/cli.py``) that reproduce it, with the model and corpus
as folders named after their uploads.
"""

from __future__ import annotations

import hashlib
import platform
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from django.utils.text import slugify

from .models import Result, Step, StepKind

ENGINE = ["python", "-m", "analysis.engine"]
CACHE_DIR = "var/engine"  # the CLI's default --cache-dir, where ``stats`` finds the store ``extract`` built
LIBRARIES = {"torch": "torch", "transformers": "transformers", "numpy": "numpy", "scikit-learn": "scikit-learn"}


@lru_cache(maxsize=1)
def engine_version() -> str:
    """The engine's identity: the sha256 (first 12) of its source files, so two results with the same value
    were computed by the same engine code, whatever the deployment calls its release."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).parent / "engine").rglob("*.py")):
        digest.update(path.relative_to(Path(__file__).parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def library_versions() -> dict:
    """What a result is computed with, recorded in its meta at compute time."""
    versions = {"engine": engine_version(), "python": platform.python_version()}
    for name, distribution in LIBRARIES.items():
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


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
    if step.kind == StepKind.EXTRACT:
        return step
    return step.run.steps.filter(kind=StepKind.EXTRACT, result_key=store_key).first()


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


def _extraction_flags(extraction: dict, corpus: dict) -> list[str]:
    """The CLI's extraction options for the platform's ExtractionParams (the platform reads corpora with no
    sentence-length limit, hence ``--max-sentence-words 0``)."""
    flags = ["--sets", ",".join(extraction.get("neuron_sets", ["hidden"])),
             "--aggregation", extraction.get("aggregation", "last"), "--max-sentence-words", "0"]
    if corpus.get("labels"):
        flags += ["--labels", corpus["labels"]]
    else:
        flags += ["--label-column", extraction.get("label_column", "")]
    if extraction.get("max_length"):
        flags += ["--max-length", str(extraction["max_length"])]
    if extraction.get("dtype") == "float16":
        flags.append("--half")
    return flags


def _selection_flags(params: dict) -> list[str]:
    flags = ["--rank-sets", ",".join(params.get("neuron_sets") or ["hidden"])]
    if params.get("layers"):
        flags += ["--layers", ",".join(str(layer) for layer in params["layers"])]
    return flags


def provenance_of(step: Step, neuron: str | None = None) -> Provenance:
    """The provenance of ``step``'s result (``neuron``: the label the ``stats`` command shows)."""
    p = step.params
    result = Result.objects.filter(key=step.result_key).first()
    versions = (result.meta or {}).get("versions") if result else None
    origin = step  # the step whose store the result comes from (a model ablation: its ranking's)
    if step.kind == StepKind.MODEL_ABLATION:
        origin = step.run.steps.filter(kind=StepKind.RANKING, result_key=p.get("ranking_key")).first() or step
    store_keys = origin.params.get("store_keys") or [
        step.result_key if step.kind == StepKind.EXTRACT else origin.params.get("store_key")]
    extracts = [e for e in (_extract_step(step, key) for key in store_keys if key) if e is not None]
    models = [_model(e.params.get("model")) for e in extracts]
    corpus = _corpus(extracts[0].params.get("corpus")) if extracts else None
    extraction = dict(extracts[0].params.get("extraction", {})) if extracts else {}
    hidden = {"store_key", "store_keys", "models", "model", "corpus", "extraction", "seed", "ranking_key",
              "test_set", "neuron_sets", "layers"}
    parameters = {k: v for k, v in p.items() if k not in hidden}
    if step.kind != StepKind.EXTRACT:
        parameters = {"neuron_sets": origin.params.get("neuron_sets"),
                      "layers": origin.params.get("layers") or "all", **parameters}
    prov = Provenance(title=step.title, kind=step.kind, result_key=step.result_key, models=models, corpus=corpus,
                      extraction=extraction, parameters=parameters, seed=p.get("seed"), versions=versions)
    if corpus is not None and models:
        _add_commands(prov, step, neuron)
    return prov


def _add_commands(prov: Provenance, step: Step, neuron: str | None) -> None:
    p, corpus, model = step.params, prov.corpus, f"./{prov.models[0]['folder']}"
    source = [model, f"./{corpus['file']}", *_extraction_flags(prov.extraction, corpus)]
    seed = ["--seed", str(p.get("seed", 0))]
    if step.kind == StepKind.EXTRACT:
        prov.commands.append([*ENGINE, "extract", *source])
    elif step.kind == StepKind.RANKING:
        command = [*ENGINE, "rank", *source, *_selection_flags(p), "--method", p["method"],
                   "--bootstrap", str(p.get("bootstrap", 0)), *seed, "--json", "ranking.json"]
        if (p.get("options") or {}).get("control"):
            command.append("--control")
        if p.get("consensus"):
            command += ["--consensus", p["consensus"]]
        prov.commands.append(command)
    elif step.kind == StepKind.STATISTICS:
        prov.commands.append([*ENGINE, "extract", *source])
        prov.commands.append([*ENGINE, "stats", f"{CACHE_DIR}/stores/{p['store_key']}", neuron or "L0:0"])
        prov.notes.append("stats prints the statistics of the neurons named (any labels of the run's sets).")
    elif step.kind == StepKind.PROBE_ABLATION:
        prov.commands.append([
            *ENGINE, "probe-ablate", *source, *_selection_flags(p),
            "--percents", ",".join(f"{x:g}" for x in p.get("percents", [])),
            "--modes", ",".join(p.get("modes", [])), "--random-seeds", str(p.get("random_seeds", 1)), *seed])
    elif step.kind == StepKind.CROSSMODEL:
        folders = [f"./{m['folder']}" for m in prov.models]
        prov.commands.append([*ENGINE, "crossmodel", f"./{corpus['file']}", *folders, "--methods", p["method"],
                              *_extraction_flags(prov.extraction, corpus), *_selection_flags(p)])
        if p.get("options"):
            prov.notes.append(f"the command line has no option for {', '.join(sorted(p['options']))}: it uses "
                              "the engine's default.")
    elif step.kind == StepKind.MODEL_ABLATION:
        ranking = step.run.steps.filter(kind=StepKind.RANKING, result_key=p.get("ranking_key")).first()
        if ranking is not None:
            _add_commands(prov, ranking, neuron)
        prov.commands.append([*ENGINE, "ablate", model, "ranking.json", *_test_set_arguments(p.get("test_set")),
                              "--steps", str(len(p.get("percents", [])) + 1), "--json", "curve.json"])
        prov.notes.append("ablate spaces its points evenly (--steps) and has no random orders: the platform's "
                          f"percents {p.get('percents')} and {p.get('random_seeds', 0)} random order(s) are not "
                          "command-line options, so the points differ; the curve along the ranking is the same.")


def _test_set_arguments(pk) -> list[str]:
    """The test set's file (and its references, for a translation model) as the ablate command takes them."""
    from projects.models import TestSetUpload

    test_set = TestSetUpload.objects.filter(pk=pk).first() if pk else None
    if test_set is None:
        return ["./test-set.txt"]
    arguments = [f"./{test_set.metadata.get('source_file') or 'test-set.txt'}"]
    if test_set.metadata.get("reference_file"):
        arguments += ["--references", f"./{test_set.metadata['reference_file']}"]
    return arguments
