"""The estimate the new-analysis form shows before a run is started: disk, memory, its cost in compute-seconds,
and which parts are already computed. ``create_run`` refuses a run whose cost is over the user's limits with the
same numbers.

The steps and their result keys come from ``services.plan_run`` (the same plan ``create_run`` stores), so a
part marked "reused" is exactly a step that would finish at once. Sizes come from the model's config (hidden
size, layers, MLP width, read from its ``config.json``) and the corpus's word count, through the activation
store's own size function (``engine.store.npy_bytes``).

**Cost** (:func:`step_seconds`): the compute-seconds each planned step would hold a worker, per step kind, from
rates measured with all-MiniLM-L6-v2 over UD EWT (``settings.NEUROX_COST_RATES``, ``benchmarks/
bench_cost_rates.py`` measures them and prints measured against estimated). The work of a step is counted in
what its time grows with: an extraction in words (× the model's parameters over MiniLM's: a forward pass grows
with the model), statistics and rankings in cells (words × the neurons selected, which grow with the model's
width and depth) times the fits they make (1 + bootstrap resamples, each at the method's measured share of a
fit), a probe ablation in probe fits on the kept neurons, a cross-model ranking in words × (all neurons)², a
model-level ablation in forward passes over the test set (one per curve point and order). Every step adds
``step_seconds`` (claim, opening the store, writing the result). A step whose result exists (reused), or that
another run is computing now (it will be reused), costs 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

from analysis.runs import services
from analysis.engine.store import ACTIVATION_DTYPE, npy_bytes
from analysis.models import Result, ResultKind, ResultState
from analysis.steps.registry import step_type

MINILM_PARAMETERS = 22_713_216  # the model the words/s rates were measured with
FFN_WIDTH_KEYS = ("intermediate_size", "n_inner", "d_ff", "ffn_dim", "encoder_ffn_dim", "ffn_hidden_size")
WORD_JSON_BYTES = 8  # a word and its quotes and comma in the store's word list, on average (English)
FEATURE_BYTES = 4  # rankings read the selected neurons as float32


@dataclass
class Part:
    title: str
    kind: str
    state: str  # "new", "reused" (a ready result exists) or "building" (another run computes it now)
    seconds: float = 0.0  # its cost in compute-seconds (0 unless new)


@dataclass
class Estimate:
    parts: list[Part] = field(default_factory=list)
    disk_bytes: int = 0  # new activation stores (other results are small)
    memory_bytes: int = 0  # the largest single step's working set
    seconds: dict[str, float] = field(default_factory=dict)  # device → extraction seconds of the new stores
    words: int = 0
    compute_seconds: float = 0.0  # the run's cost: every new step's compute-seconds
    limits: dict = field(default_factory=dict)  # the user's, when asked for: see ``with_limits``

    @property
    def reused(self) -> int:
        return sum(part.state == "reused" for part in self.parts)

    @property
    def by_kind(self) -> dict[str, float]:
        """Compute-seconds per step kind, largest first."""
        totals: dict[str, float] = {}
        for part in self.parts:
            totals[part.kind] = totals.get(part.kind, 0.0) + part.seconds
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    @property
    def cost_text(self) -> str:
        return duration_text(self.compute_seconds)


def duration_text(seconds: float) -> str:
    """Compute-seconds for people: "under a minute", "about 12 min", "about 5 h 20 min", "about 3 days 4 h"."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"about {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"about {hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"about {days:,} days" + (f" {hours} h" if hours else "")


def limit_text(seconds: float) -> str:
    """A limit in compute-seconds for people, exact where it is round: "4 h", "90 min", "40 h"."""
    return duration_text(seconds).removeprefix("about ")


# ------------------------------------------------------------------------------------------------ the cost model


@dataclass(frozen=True)
class Work:
    """What one step's cost grows with: the corpus's words, the neurons it reads (its model's, or each model's for
    a cross-model step), the model's parameters, and a model-level ablation's test set."""

    words: int
    units: int = 0  # neurons selected (a cross-model step: the sum over its models)
    unit_squares: int = 0  # a cross-model step: (the sum over its models of their neurons)²
    n_parameters: int = MINILM_PARAMETERS
    test_words: int = 0


def _rates() -> dict:
    return settings.NEUROX_COST_RATES


def _words_per_second() -> float:
    """Forward passes (extraction, model-level ablation) run on the gpu queue: its device's measured rate (the
    CUDA one once an operator sets it, else the CPU one)."""
    rates = settings.NEUROX_ESTIMATE_WORDS_PER_SECOND
    return rates.get("cuda") or rates.get("cpu") or 970.0


def _fits(method: str, bootstrap: int) -> float:
    """A ranking's fits in units of its main fit: 1, plus each resample at its method's measured share."""
    share = _rates()["resample_share"].get(method, 1.0)
    return 1.0 + (bootstrap or 0) * share


def _ablation_orders(params: dict) -> int:
    """Selections per curve point: top and bottom once each, random once per random seed."""
    modes = params.get("modes") or ()
    return sum(params.get("random_seeds", 1) if m == "random" else 1 for m in modes)


def step_seconds(kind: str, params: dict, work: Work) -> float:
    """The compute-seconds one new step of ``kind`` with ``params`` would take (``settings.NEUROX_COST_RATES``).
    A kind the platform does not know (a site's own) costs the per-step overhead only."""
    rates = _rates()
    scale = max(work.n_parameters, 1) / MINILM_PARAMETERS
    cells = work.words * work.units
    if kind == "extract":
        seconds = work.words / _words_per_second() * scale
    elif kind == "statistics":
        seconds = cells / rates["statistics_cells_per_second"]
    elif kind == "ranking":
        by_method = rates["ranking_cells_per_second"]
        rate = by_method.get(params.get("method"), min(by_method.values()))
        seconds = cells / rate * _fits(params.get("method"), params.get("bootstrap", 0))
    elif kind == "probe_ablation":
        # the lca probe once, then per point and selection: retrain fits a probe on the kept share of the neurons
        # (one fit at a fixed λ2: lca's resample share), zero_out only scores the trained probe
        fit = cells / rates["ranking_cells_per_second"]["lca"]
        per_selection = _ablation_orders({**params, "modes": ["top", "bottom", "random"]})
        retrain = sum(p / 100 for p in params.get("percents", ())) if "retrain" in params.get("modes", ()) else 0
        zero_out = len(params.get("percents", ())) if "zero_out" in params.get("modes", ()) else 0
        seconds = fit * (1 + per_selection * (retrain * rates["resample_share"]["lca"]
                                              + zero_out * rates["probe_evaluation_share"]))
    elif kind == "crossmodel":
        rate = rates["crossmodel_cells_per_second"].get(params.get("method"),
                                                         min(rates["crossmodel_cells_per_second"].values()))
        seconds = work.words * work.unit_squares / rate
    elif kind == "model_ablation":
        passes = 1 + len(params.get("percents", ())) * _ablation_orders(params)
        seconds = work.test_words * passes / _words_per_second() * scale
    else:
        seconds = 0.0
    return seconds + rates["step_seconds"]


def _model_config(model) -> dict:
    try:
        with default_storage.open(model.storage_name("config.json")) as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return {}


def _ffn_width(config: dict, hidden: int) -> int:
    for key in FFN_WIDTH_KEYS:
        if isinstance(config.get(key), int) and config[key] > 0:
            return config[key]
    return 4 * hidden  # GPT-2's n_inner = None, and the usual ratio


def store_shape(model, neuron_sets) -> dict[str, dict]:
    """``{set: {"layers": n, "units": u}}`` as the activation store of ``model`` would hold them (an
    encoder-decoder stores each set for its encoder and its decoder)."""
    config = _model_config(model)
    hidden = model.hidden_size or config.get("hidden_size") or 0
    ffn = _ffn_width(config, hidden)
    stacks = [model.n_layers or 0]
    if model.model_kind == "encoder-decoder":
        stacks.append(model.metadata.get("n_decoder_layers") or model.n_layers or 0)
    shape = {}
    for side, layers in zip(("enc.", "dec.") if len(stacks) == 2 else ("",), stacks):
        if "hidden" in neuron_sets:
            shape[f"{side}hidden"] = {"layers": layers + 1, "units": hidden}  # layer 0: the embeddings
        if "mlp" in neuron_sets:
            shape[f"{side}mlp"] = {"layers": layers, "units": ffn}
    return shape


def store_bytes(n_sentences: int, n_words: int, shape: dict) -> int:
    """The store's size on disk: the activation arrays and offsets exactly, the word list approximately."""
    total = n_words * WORD_JSON_BYTES
    total += npy_bytes((n_sentences + 1,), np.int64) + npy_bytes((n_words,), np.int32)
    for spec in shape.values():
        total += spec["layers"] * npy_bytes((n_words, spec["units"]), ACTIVATION_DTYPE)
    return total


def _selected_units(shape: dict, layers) -> int:
    return sum(spec["units"] * (spec["layers"] if layers is None else len([i for i in layers if i < spec["layers"]]))
               for spec in shape.values())


def _states(keys: list[str]) -> dict[str, str]:
    found = dict(Result.objects.filter(key__in=keys).values_list("key", "state"))
    return {key: {ResultState.READY: "reused", ResultState.BUILDING: "building"}.get(found.get(key), "new")
            for key in keys}


def _test_words(plan, step) -> int:
    """A model-level ablation's test set in words: its sentences at the corpus's mean sentence length."""
    from projects.models import TestSetUpload

    test_set = TestSetUpload.objects.filter(pk=step.params.get("test_set")).first()
    per_sentence = plan.corpus.n_words / max(plan.corpus.n_sentences, 1)
    return round((test_set.n_sentences if test_set else 0) * per_sentence)


def _work(plan, step, shapes: dict) -> Work:
    corpus, layers = plan.corpus, plan.request["layers"]
    if step.model is None:  # a cross-model step: every model of the run
        units = [_selected_units(shapes[m.pk], layers) for m in plan.models]
        return Work(words=corpus.n_words, units=sum(units), unit_squares=sum(units) ** 2)
    test_words = _test_words(plan, step) if step.kind == "model_ablation" else 0
    return Work(words=corpus.n_words, units=_selected_units(shapes[step.model.pk], layers),
                n_parameters=step.model.n_parameters or MINILM_PARAMETERS, test_words=test_words)


def plan_cost(plan, states: dict | None = None) -> list[float]:
    """Each planned step's compute-seconds (0 for one whose result exists or is being built by another run)."""
    states = states or _states([step.key for step in plan.steps])
    shapes = {model.pk: store_shape(model, plan.request["neuron_sets"]) for model in plan.models}
    return [0.0 if states[step.key] != "new" else step_seconds(step.kind, step.params, _work(plan, step, shapes))
            for step in plan.steps]


def estimate(project, request: dict, plan=None) -> Estimate:
    """The estimate for ``request`` (or its ``plan``, already made); ``ValidationError`` (as ``create_run`` raises
    it) when it cannot run."""
    plan = plan or services.plan_run(project, request)
    corpus = plan.corpus
    states = _states([step.key for step in plan.steps])
    costs = plan_cost(plan, states)
    result = Estimate(words=corpus.n_words, compute_seconds=sum(costs))
    rates = settings.NEUROX_ESTIMATE_WORDS_PER_SECOND
    result.seconds = {device: 0.0 for device in rates}
    batch_tokens = settings.NEUROX_EXTRACT_BATCH_TOKENS
    for step, cost in zip(plan.steps, costs):
        state = states[step.key]
        result.parts.append(Part(step.title, step.kind, state, cost))
        if step.model is None:
            continue
        shape = store_shape(step.model, plan.request["neuron_sets"])
        if step_type(step.kind).result_kind == ResultKind.STORE:  # an extraction
            weights = step.model.n_parameters * 4  # float32
            captured = sum(spec["layers"] * spec["units"] for spec in shape.values())
            memory = weights + batch_tokens * captured * (4 + 2)  # one batch: float32 captured, float16 kept
            if state == "new":
                result.disk_bytes += store_bytes(corpus.n_sentences, corpus.n_words, shape)
                scale = max(step.model.n_parameters, 1) / MINILM_PARAMETERS
                for device, rate in rates.items():
                    result.seconds[device] += corpus.n_words / rate * scale
        else:  # a ranking, statistics or curve reads the selected neurons of every word
            memory = corpus.n_words * _selected_units(shape, plan.request["layers"]) * FEATURE_BYTES
        if state != "reused":
            result.memory_bytes = max(result.memory_bytes, memory)
    return result


def with_limits(result: Estimate, user) -> Estimate:
    """The estimate with the user's compute limits beside it (what the new-analysis page shows)."""
    from analysis.runs.selectors import compute_seconds_committed

    quota, used = user.limit("compute_quota_seconds"), compute_seconds_committed(user)
    result.limits = {"per_run": user.limit("max_run_compute_seconds"), "quota": quota, "used": used,
                     "left": max(0.0, quota - used), "period_days": settings.NEUROX_COMPUTE_PERIOD_DAYS,
                     "per_run_text": limit_text(user.limit("max_run_compute_seconds")),
                     "quota_text": limit_text(quota), "used_text": duration_text(used).removeprefix("about "),
                     "left_text": duration_text(max(0.0, quota - used)).removeprefix("about "),
                     "over_per_run": result.compute_seconds > user.limit("max_run_compute_seconds"),
                     "over_quota": used + result.compute_seconds > quota}
    return result
