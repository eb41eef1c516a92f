"""The run as the read side sees it (:class:`RunView`), found through the one permission path, and its results,
loaded once per process.

A RunView is made once per request (``RunView.of(run)`` keeps it on the Run instance): the run's succeeded steps
in one query, told apart by what their step type builds (the step registry's ``result_kind``), and the run's
models (:class:`RunModel`), each with its store, statistics and rankings.

**A model of the run** is a succeeded extraction: its store stays readable whatever happens to the upload.
``RunModel.upload`` is the project's ModelUpload, or None once the model was deleted or detached from the
project; such a model is called "removed model", its results (rankings, statistics, neuron pages, downloads) are
still shown, and what needs the model itself (a typed sentence, a manipulation) is not offered.

Results are keyed by content and never change once ready, so a loaded ranking, statistics file, JSON document or
store handle is cached by its key for the life of the worker process (``loaded``, a small LRU): a page answers
without asking the database or re-reading files, and no request reads a whole activation store (stores are
memory-mapped; a page reads the rows of the sentences it shows).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from threading import Lock

from django.http import Http404

from analysis.models import Result, ResultKind, ResultState, Run, Step, StepState
from analysis.runs import selectors
from analysis.steps.registry import step_type
from analysis.steps.storage import result_path

REMOVED_MODEL = "removed model"  # the name of a run's model that is no longer in its project


def run_in_project(user, project_pk: int, run_pk: int) -> Run:
    """The run ``run_pk`` of project ``project_pk`` as ``user`` may see it, else ``Http404``."""
    run = selectors.run_for(user, run_pk)
    if run.project_id != project_pk:
        raise Http404("No such run.")
    return run


def run_view_for(user, project_pk: int, run_pk: int) -> "RunView":
    """The :class:`RunView` of the run ``run_pk`` of project ``project_pk`` as ``user`` may see it, else 404."""
    return RunView.of(run_in_project(user, project_pk, run_pk))


# ------------------------------------------------------------------------------------------------ loaded results


class _LoadedResults:
    """A small per-process LRU of loaded results, by content key (results never change once ready)."""

    def __init__(self, size: int = 32):
        self.size, self._items, self._lock = size, OrderedDict(), Lock()

    def get(self, key: str, load):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


loaded = _LoadedResults()


def ready_result(step: Step) -> Result:
    """The ready result of a succeeded step of the run, else ``Http404``."""
    try:
        return Result.objects.get(key=step.result_key, state=ResultState.READY)
    except Result.DoesNotExist:
        raise Http404("This result is not ready.")


def _cached(step: Step, prefix: str, read):
    """``read(path)`` of a succeeded step's result, cached by its content key: once this process has it, the
    database is not asked again (a succeeded step's result is ready, and results never change)."""
    return loaded.get(prefix + step.result_key, lambda: read(result_path(ready_result(step).path)))


def _read_json(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _read_ranking(path):
    from analysis.engine.ranking import Ranking

    data = _read_json(path)
    if "rankings" in data:  # a cross-model ranking
        return {r["store_key"]: Ranking.from_dict(r) for r in data["rankings"]}
    return Ranking.from_dict(data)


def ranking_of(step: Step):
    """The engine ``Ranking`` of a succeeded ranking step (for a cross-model step: a dict of one Ranking per
    model, by store key)."""
    return _cached(step, "", _read_ranking)


def ranking_over(step: Step, store_key: str):
    """The ranking of one store's neurons: the step's own, or its ranking of that model when it is cross-model."""
    ranking = ranking_of(step)
    return ranking[store_key] if isinstance(ranking, dict) else ranking


def document_of(step: Step) -> dict:
    """The JSON document of a succeeded step whose type keeps one (``StepType.inline``): a curve, a ranking."""
    return _cached(step, "document:", _read_json)


def statistics_of(step: Step):
    """The engine ``NeuronStats`` of a succeeded statistics step."""
    from analysis.engine.stats import NeuronStats

    return _cached(step, "", lambda path: NeuronStats.load(path / "stats"))


def store_of(store_key: str):
    """The memory-mapped activation store ``store_key`` (only the rows a page reads are read from disk);
    ``RuntimeError`` saying how to get it back when its files are gone."""
    from analysis.steps.storage import open_store

    return loaded.get(f"store:{store_key}", lambda: open_store(store_key))


# ------------------------------------------------------------------------------------------------ the run


def builds(step: Step) -> str:
    """The ``ResultKind`` a step's type builds ("" for a kind no longer registered: nothing a page reads)."""
    try:
        return step_type(step.kind).result_kind
    except LookupError:
        return ""


def holds_neuron_stats(step: Step) -> bool:
    """A statistics step whose result is the engine's NeuronStats folder (``statistics_of``), not a small JSON
    summary that another kind building statistics keeps (``StepType.inline``)."""
    return builds(step) == ResultKind.STATISTICS and not step_type(step.kind).inline


def stores_of(step: Step) -> list[str]:
    """The activation stores a step reads (an extraction: the one it builds)."""
    return step_type(step.kind).store_keys(step)


def is_crossmodel(step: Step) -> bool:
    """A ranking over several models' stores (its result holds one ranking per store)."""
    return len(stores_of(step)) > 1


@dataclass(frozen=True)
class RunModel:
    """One model of the run: the store its extraction built, and the run's statistics and rankings over it."""

    store_key: str
    name: str
    upload: object | None  # projects.models.ModelUpload; None once it is no longer in the project
    statistics_step: Step | None  # its neuron statistics (the first, in step order)
    ranking_steps: tuple[Step, ...]  # single-model and cross-model rankings over this store, in step order

    @property
    def pk(self) -> int | None:
        return self.upload.pk if self.upload else None

    def store(self):
        return store_of(self.store_key)

    def statistics(self):
        """The model's NeuronStats, or None when the run computed none."""
        return statistics_of(self.statistics_step) if self.statistics_step else None


class RunView:
    """Everything the read side reads of one run, each part looked up once (see the module docstring)."""

    def __init__(self, run: Run):
        self.run = run

    @classmethod
    def of(cls, run: Run) -> "RunView":
        """The run's view, made once per Run instance (i.e. once per request)."""
        if getattr(run, "_run_view", None) is None:
            run._run_view = cls(run)
        return run._run_view

    @cached_property
    def steps(self) -> list[Step]:
        """The run's succeeded steps, in step order (the one query for its results)."""
        return list(self.run.steps.filter(state=StepState.SUCCEEDED).order_by("id"))

    def built(self, result_kind: str) -> list[Step]:
        """The succeeded steps whose type builds ``result_kind``, in step order."""
        return [step for step in self.steps if builds(step) == result_kind]

    def steps_building(self, result_kind: str) -> list[Step]:
        """Every step of the run whose type builds ``result_kind``, in any state (what a page shows as still
        computing or failed)."""
        return [step for step in self.run.steps.order_by("id") if builds(step) == result_kind]

    @cached_property
    def rankings(self) -> list[Step]:
        return self.built(ResultKind.RANKING)

    @cached_property
    def models(self) -> list[RunModel]:
        """The run's models, one per succeeded extraction, in step order (removed ones too: see the module)."""
        extracts = self.built(ResultKind.STORE)
        ids = [step.params.get("model") for step in extracts]
        uploads = {m.pk: m for m in self.run.project.model_uploads.filter(pk__in=[i for i in ids if i])}
        statistics = [step for step in self.steps if holds_neuron_stats(step)]
        models = []
        for extract, model_id in zip(extracts, ids):
            key, upload = extract.result_key, uploads.get(model_id)
            models.append(RunModel(
                store_key=key, name=upload.name if upload else REMOVED_MODEL, upload=upload,
                statistics_step=next((s for s in statistics if key in stores_of(s)), None),
                ranking_steps=tuple(s for s in self.rankings if key in stores_of(s))))
        return models

    @property
    def usable_models(self) -> list[RunModel]:
        """The run's models that are still in the project (what a forward pass can use)."""
        return [model for model in self.models if model.upload is not None]

    def model(self, store_key: str) -> RunModel | None:
        return next((model for model in self.models if model.store_key == store_key), None)

    def usable_model(self, model_id) -> RunModel | None:
        """The usable model whose upload is ``model_id`` (an id or its text), else None."""
        return next((model for model in self.usable_models if str(model.pk) == str(model_id)), None)

    def step(self, step_id) -> Step:
        """The succeeded step ``step_id`` of the run, else ``Http404``."""
        found = next((step for step in self.steps if str(step.pk) == str(step_id)), None)
        if found is None:
            raise Http404("No such result in this run.")
        return found

    @cached_property
    def ready_results(self) -> dict[str, Result]:
        """The ready Result rows of the succeeded steps, by content key (one query)."""
        keys = [step.result_key for step in self.steps]
        return {r.key: r for r in Result.objects.filter(key__in=keys, state=ResultState.READY)}

    @property
    def selection(self) -> tuple[list[str], list[int] | None]:
        """The neuron sets and layers the run's rankings and statistics read (None: every layer)."""
        return list(self.run.request.get("neuron_sets") or ["hidden"]), self.run.request.get("layers")
