"""What every workspace page of a run reads: the run (through the one permission path), the view state held in
the URL, and the run's results, loaded once per process.

Results are keyed by content and never change once ready, so a loaded ranking, statistics file or store handle
is cached by its key for the life of the worker process (a small LRU): a page answers without re-reading JSON or
``.npz`` files, and no request reads a whole activation store (stores are memory-mapped; a page reads the rows of
the sentences it shows).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from threading import Lock
from urllib.parse import urlencode

from django.http import Http404

from . import selectors
from .models import Result, ResultState, Run, Step, StepState, results_root

POOL_LIMIT = 50  # neurons a pool (and so a URL) holds


def run_in_project(user, project_pk: int, run_pk: int) -> Run:
    """The run ``run_pk`` of project ``project_pk`` as ``user`` may see it, else ``Http404``."""
    run = selectors.run_for(user, run_pk)
    if run.project_id != project_pk:
        raise Http404("No such run.")
    return run


# ------------------------------------------------------------------------------------------------ view state


@dataclass(frozen=True)
class ViewState:
    """The shareable state of a workspace page, all of it in the query string: a colleague with access who opens
    the same URL sees the same view. ``ranking`` is a step id of the run; ``pool`` neuron labels (``hidden:3:17``);
    ``page`` the corpus page of the activation map; ``q`` its word search; ``recipe`` a saved manipulation."""

    ranking: int | None = None
    pool: tuple[str, ...] = ()
    page: int = 1
    q: str = ""
    recipe: int | None = None
    extra: dict = field(default_factory=dict)  # other parameters a page keeps (e.g. label=, layer=)

    @classmethod
    def from_request(cls, request) -> "ViewState":
        get = request.GET
        pool = []
        for item in get.getlist("pool") + [p for v in get.getlist("pools") for p in v.split(",")]:
            item = item.strip()
            if item and item not in pool:
                pool.append(item)
        known = {"ranking", "pool", "pools", "page", "q", "recipe"}
        return cls(ranking=_positive_int(get.get("ranking")), pool=tuple(pool[:POOL_LIMIT]),
                   page=_positive_int(get.get("page")) or 1, q=get.get("q", "").strip()[:200],
                   recipe=_positive_int(get.get("recipe")),
                   extra={k: v for k, v in get.items() if k not in known})

    def with_(self, **changes) -> "ViewState":
        return replace(self, **changes)

    def query(self, **changes) -> str:
        """The query string of this state with ``changes`` (e.g. ``page=2``), for links and htmx requests."""
        state = self.with_(**{k: v for k, v in changes.items() if k in self.__dataclass_fields__})
        extra = {**state.extra, **{k: v for k, v in changes.items() if k not in self.__dataclass_fields__}}
        pairs = []
        if state.ranking:
            pairs.append(("ranking", state.ranking))
        if state.pool:
            pairs.append(("pools", ",".join(state.pool)))
        if state.page > 1:
            pairs.append(("page", state.page))
        if state.q:
            pairs.append(("q", state.q))
        if state.recipe:
            pairs.append(("recipe", state.recipe))
        pairs += [(k, v) for k, v in sorted(extra.items()) if v not in (None, "")]
        return urlencode(pairs)


def _positive_int(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


# ------------------------------------------------------------------------------------------------ results


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


def succeeded_steps(run: Run, kind: str | None = None) -> list[Step]:
    steps = run.steps.filter(state=StepState.SUCCEEDED).order_by("id")
    return list(steps.filter(kind=kind) if kind else steps)


def ready_result(step: Step) -> Result:
    """The ready result of a succeeded step of the run, else ``Http404``."""
    try:
        return Result.objects.get(key=step.result_key, state=ResultState.READY)
    except Result.DoesNotExist:
        raise Http404("This result is not ready.")


def step_of(run: Run, step_id: int | None, kinds=None) -> Step:
    """The succeeded step ``step_id`` of ``run`` (of one of ``kinds``), else ``Http404``."""
    steps = run.steps.filter(state=StepState.SUCCEEDED)
    if kinds:
        steps = steps.filter(kind__in=kinds)
    try:
        return steps.get(pk=step_id)
    except (Step.DoesNotExist, ValueError, TypeError):
        raise Http404("No such result in this run.")


def ranking_of(step: Step):
    """The engine ``Ranking`` of a succeeded ranking step (for a cross-model step: a dict of one Ranking per
    model, by store key)."""
    from analysis.engine.ranking import Ranking

    result = ready_result(step)

    def load():
        data = json.loads((results_root() / result.path).read_text(encoding="utf-8"))
        if "rankings" in data:  # a cross-model ranking
            return {r["store_key"]: Ranking.from_dict(r) for r in data["rankings"]}
        return Ranking.from_dict(data)

    return loaded.get(result.key, load)


def curve_of(step: Step) -> dict:
    """The curve (JSON document) of a succeeded probe- or model-ablation step."""
    result = ready_result(step)
    return loaded.get(result.key, lambda: json.loads((results_root() / result.path).read_text(encoding="utf-8")))


def store_of(store_key: str):
    """The memory-mapped activation store ``store_key`` (only the rows a page reads are read from disk)."""
    from .steps.storage import open_store

    return loaded.get(f"store:{store_key}", lambda: open_store(store_key))


def statistics_of(step: Step):
    """The engine ``NeuronStats`` of a succeeded statistics step."""
    from analysis.engine.stats import NeuronStats

    result = ready_result(step)
    return loaded.get(result.key, lambda: NeuronStats.load(results_root() / result.path / "stats"))
