"""Every change of state of a run, its steps, its log and its results happens here.

A step's life: ``pending`` (waits for the steps it needs) → ``queued`` (a message was sent, in
``transaction.on_commit``) → ``running`` (claimed by a conditional ``update()``: a duplicate delivery finds it no
longer queued and does nothing) → ``succeeded`` | ``failed`` | ``cancelled``. No transaction or row lock is held
while computing: a worker claims, computes outside any transaction, then finishes with another short update.

Results are keyed by content. The first step that needs a missing result creates its ``Result`` row in state
``building`` (the key is unique, so exactly one step wins); a step of another run that needs the same key goes
back to ``pending`` and is dispatched again when the builder finishes (then it is "reused") or gives up (then
it builds the result itself).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from analysis.engine.crossmodel import METHODS as CROSSMODEL_METHODS
from analysis.engine.extract import ExtractionParams, extraction_key
from analysis.engine.hashing import sha256_json
from analysis.engine.methods import BOOTSTRAP, CONSENSUS, CONSENSUS_MIN_BOOTSTRAP, METHODS
from analysis.engine.model_ablation import OPTIONS as MODEL_ABLATION_OPTIONS
from analysis.engine.options import Option, OptionError, clean_fields, clean_options, names_in_words
from analysis.engine.probe_ablation import OPTIONS as PROBE_ABLATION_OPTIONS
from projects.selectors import can_write

from analysis.models import (
    FINISHED_RUN_STATES, FINISHED_STEP_STATES, LogLine, Result, results_root, ResultState, Run, RunState, Step,
    StepKind, StepState,
)
from analysis.runs import fair_share
from analysis.runs.selectors import active_runs_of, waiting_reason
from analysis.steps import object_store, step_type, step_types
from analysis.steps.queues import messages_waiting, send_step

log = logging.getLogger(__name__)

NEURON_SETS = ("hidden", "mlp")
# One stack of an encoder-decoder (its "hidden" means both): what the Manipulation view can move at source words.
SIDE_NEURON_SETS = tuple(f"{side}.{name}" for side in ("enc", "dec") for name in NEURON_SETS)
ACTIVE_STEP_STATES = (StepState.QUEUED, StepState.RUNNING)
# What a request sets beside the engine's options (those are declared beside each engine function:
# methods.METHODS, crossmodel.METHODS, probe_ablation.OPTIONS, model_ablation.OPTIONS).
STATISTICS = Option("statistics", bool, True, "per-neuron statistics")
SEED = Option("seed", int, 0, "the seed of splits, probes and resampling", minimum=0, maximum=2**32 - 1)
# The most items each list of a request may hold: the one table the checks, the API schema (maxItems) and the
# README read. What the items cost together is bounded by the run's compute-seconds (``_refuse_over_compute``).
MAX_ITEMS = {"models": 8, "rankings": 20, "crossmodel": 8}
ITEM_NAMES = {"models": "models", "rankings": "rankings", "crossmodel": "cross-model rankings"}


def too_many_message(field: str) -> str:
    """ "A run holds at most 20 rankings; …" (the service's and the API serializer's message)."""
    return (f"A run holds at most {MAX_ITEMS[field]} {ITEM_NAMES[field]}; split the work into several runs "
            "(results already computed are reused by the next one).")


def _too_many(value, field: str, errors: dict) -> bool:
    if isinstance(value, list) and len(value) > MAX_ITEMS[field]:
        errors[field] = [f"{too_many_message(field)} This request has {len(value):,}."]
        return True
    return False


class RunStateError(Exception):
    """The run is not in a state that allows this (e.g. cancelling a finished run)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.message, self.code = message, code


# ------------------------------------------------------------------------------------------------ the request


class _Refused(Exception):
    """One item of a list in the request that does not fit; its message, without the item's number."""


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _each(items: list, clean, label: str, field: str, errors: dict) -> list:
    """``clean(item)`` for each item; the items it refuses are reported under ``field`` as "{label} {n}: …"."""
    cleaned, messages = [], []
    for number, item in enumerate(items, start=1):
        try:
            cleaned.append(clean(item))
        except _Refused as refused:
            messages.append(f"{label} {number}: {refused}")
    if messages:
        errors[field] = messages
    return cleaned


def _method_of(item, registry: dict) -> tuple[dict, object]:
    """A ranking item as an object (a bare name stands for ``{"method": name}``) and its method in ``registry``."""
    item = {"method": item} if isinstance(item, str) else item
    name = item.get("method") if isinstance(item, dict) else item
    if not isinstance(name, str) or name not in registry:
        raise _Refused(f"unknown method {name!r}; choose one of {', '.join(registry)}.")
    return item, registry[name]


def _ranking(item, corpus) -> dict:
    """One item of ``rankings``: its method (``methods.METHODS``), bootstrap, options and consensus."""
    item, method = _method_of(item, METHODS)
    if method.needs_labels and corpus is not None and not corpus.n_labels:
        raise _Refused(f"{method.name} needs labelled words and the corpus “{corpus.name}” has no labels; choose "
                       "'variance', or a corpus read with a label column.")
    bootstrap = item.get("bootstrap", method.bootstrap)
    if not BOOTSTRAP.accepts(bootstrap):
        raise _Refused(f"bootstrap is {BOOTSTRAP.help}: {BOOTSTRAP.range}, not {bootstrap!r}.")
    try:
        options = clean_options(item.get("options") or {}, method.options, method.name)
    except OptionError as error:
        raise _Refused(f"{error}." if error.unknown else "options are an object of true or false values and "
                       f"numbers, e.g. {{\"control\": true, \"l1\": 0.001}}: {error}.") from None
    consensus = item.get("consensus")
    if consensus is not None and (not CONSENSUS.accepts(consensus) or bootstrap < CONSENSUS_MIN_BOOTSTRAP):
        raise _Refused(f"consensus {CONSENSUS.help}: choose {' or '.join(CONSENSUS.choices)} with bootstrap "
                       f"{CONSENSUS_MIN_BOOTSTRAP} or more (now {bootstrap}).")
    ranking = {"method": method.name, "bootstrap": bootstrap, "options": options}
    return {**ranking, "consensus": consensus} if consensus else ranking


def _rankings(value, corpus, errors: dict) -> list[dict]:
    if not isinstance(value, list):
        errors["rankings"] = ["Give a list of rankings, e.g. [{\"method\": \"probeless\"}]."]
        return []
    if _too_many(value, "rankings", errors):
        return []
    return _each(value, lambda item: _ranking(item, corpus), "Ranking", "rankings", errors)


def _crossmodel_ranking(item) -> dict:
    """One item of ``crossmodel``: its method (``crossmodel.METHODS``) and that method's options."""
    item, method = _method_of(item, CROSSMODEL_METHODS)
    try:
        options = clean_options({k: v for k, v in item.items() if k != "method"}, method.options, method.name)
    except OptionError as error:
        raise _Refused(f"{error}.") from None
    return {"method": method.name, **options}


def _crossmodel(value, n_models: int, errors: dict) -> list[dict]:
    """``[{"method": "maxcorr"|"mincorr"|"linreg"|"svcca", ...options}]`` over every model of the request."""
    if value is None or value == []:
        return []
    if not isinstance(value, list):
        errors["crossmodel"] = ["Give a list of cross-model rankings, e.g. [{\"method\": \"maxcorr\"}]."]
        return []
    if _too_many(value, "crossmodel", errors):
        return []
    if n_models < 2:
        errors["crossmodel"] = ["Cross-model correlation compares two or more models; choose at least two models "
                                "of this project, or leave crossmodel out."]
        return []
    entries = _each(value, _crossmodel_ranking, "Cross-model ranking", "crossmodel", errors)
    return [entry for i, entry in enumerate(entries) if entry not in entries[:i]]


def _probe_ablation(value, corpus, errors: dict) -> dict | None:
    """``true`` (the engine's defaults), ``false``, or an object of ``probe_ablation.OPTIONS``."""
    if value is False or value is None:
        return None
    value = {} if value is True else value
    if not isinstance(value, dict) or set(value) - {option.name for option in PROBE_ABLATION_OPTIONS}:
        errors["probe_ablation"] = [f"probe_ablation is true, false, or an object with "
                                    f"{names_in_words(PROBE_ABLATION_OPTIONS)}."]
        return None
    ablation, messages = clean_fields(value, PROBE_ABLATION_OPTIONS)
    if not messages and corpus is not None and not corpus.n_labels:
        messages = [f"Probe ablation trains a probe on labelled words and the corpus “{corpus.name}” has no labels; "
                    "choose a corpus read with a label column."]
    if messages:
        errors["probe_ablation"] = messages
        return None
    return ablation


def _model_ablation(value, project, models, errors: dict) -> dict | None:
    """``{"test_set": id, ...}`` with the options of ``model_ablation.OPTIONS`` (the percents removed at each
    curve point, the random orders, the orders neurons are removed in), or false."""
    if value is False or value is None:
        return None
    names = {option.name for option in MODEL_ABLATION_OPTIONS}
    if not isinstance(value, dict) or "test_set" not in value or set(value) - names - {"test_set"}:
        errors["model_ablation"] = [f"model_ablation is false, or an object with test_set (a test set of this "
                                    f"project) and optionally {names_in_words(MODEL_ABLATION_OPTIONS)}."]
        return None
    test_set = project.test_set_uploads.filter(pk=value["test_set"]).first() if _is_id(value["test_set"]) else None
    messages = [] if test_set else ["test_set: choose one of this project's test sets (add one to the project first)."]
    curve, problems = clean_fields(value, MODEL_ABLATION_OPTIONS)
    messages += problems + _references_missing(test_set, models)
    if messages:
        errors["model_ablation"] = messages
        return None
    return {"test_set": test_set.pk, "test_set_sha256": test_set.sha256, **curve}


def _references_missing(test_set, models) -> list[str]:
    """An encoder-decoder is measured by BLEU against the test set's references: a message if it has none."""
    pairs = [m.name for m in models if m.model_kind == "encoder-decoder"]
    if test_set is None or test_set.has_references or not pairs:
        return []
    return [f"test_set: {', '.join(pairs)} is an encoder-decoder, measured by BLEU against references, and the "
            f"test set “{test_set.name}” has none; upload it with a reference file."]


def _models(project, model_ids, errors: dict) -> list:
    """The project's models the request names, in its order (without repeats)."""
    if not isinstance(model_ids, list) or not model_ids or not all(_is_id(pk) for pk in model_ids):
        errors["models"] = ["Choose at least one model of this project (a list of model ids)."]
        return []
    if _too_many(list(dict.fromkeys(model_ids)), "models", errors):
        return []
    attached = {m.pk: m for m in project.model_uploads.all()}
    missing = [str(pk) for pk in model_ids if pk not in attached]
    if missing:
        errors["models"] = [f"Model {', '.join(missing)} is not one of this project's models; add it to the "
                            "project first."]
    return [attached[pk] for pk in dict.fromkeys(model_ids) if pk in attached]


def _corpus(project, corpus_id, errors: dict):
    corpus = project.corpus_uploads.filter(pk=corpus_id).first() if _is_id(corpus_id) else None
    if corpus is None:
        errors["corpus"] = ["Choose one of this project's corpora."]
    return corpus


def _neuron_sets(sets, models, errors: dict) -> list[str]:
    """The neuron sets asked for, sorted; one stack's sets (``enc.hidden``) only for encoder-decoders."""
    known = set(NEURON_SETS) | set(SIDE_NEURON_SETS)
    if not isinstance(sets, list) or not sets or not all(isinstance(s, str) and s in known for s in sets):
        errors["neuron_sets"] = [f"Choose neuron sets among {', '.join(NEURON_SETS)} (for encoder-decoder models "
                                 f"also one stack's: {', '.join(SIDE_NEURON_SETS)})."]
        return []
    sides = sorted(set(sets) & set(SIDE_NEURON_SETS))
    others = [m.name for m in models if m.model_kind != "encoder-decoder"]
    if sides and others:
        errors["neuron_sets"] = [f"{', '.join(sides)} name one stack of an encoder-decoder, and {', '.join(others)} "
                                 "is not one; choose hidden or mlp."]
    return sorted(set(sets))


def _layers(value, models, errors: dict) -> list[int] | None:
    """The layer numbers asked for, sorted (None: every layer), each one that exists in every model."""
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                           and v >= 0 for v in value):
        errors["layers"] = ["Give a list of layer numbers (0 or more), e.g. [0, 3], or leave it out for every layer."]
        return None
    layers = sorted(set(value))
    too_deep = [m.name for m in models if m.n_layers is not None and max(layers) > m.n_layers]
    if too_deep:
        errors["layers"] = [f"Layer {max(layers)} does not exist in {', '.join(too_deep)}."]
    return layers


def _option(request: dict, option: Option, errors: dict):
    """A request field declared as an :class:`Option` (left out: its default)."""
    value = request.get(option.name, option.default)
    if not option.accepts(value):
        errors[option.name] = [f"{option.problem()}."]
    return value


def _aggregation(value, errors: dict) -> str:
    try:
        ExtractionParams(aggregation=value)
    except ValueError as error:
        errors["aggregation"] = [f"{str(error).capitalize()}."]
    return value


def validate_request(project, request) -> dict:
    """The request in its normal form, or ``ValidationError`` with one message per field a person can act on.

    The project's rules live here (its models, corpus and test sets; labels; layers that exist; encoder-decoder
    neuron sets; at least one thing to compute); what a method or a curve may set is checked against the
    engine's declarations of its options.
    """
    if not isinstance(request, dict):
        raise ValidationError({"request": ["Send the analysis request as a JSON object."]})
    errors: dict[str, list[str]] = {}
    models = _models(project, request.get("models"), errors)
    corpus = _corpus(project, request.get("corpus"), errors)
    sets = _neuron_sets(request.get("neuron_sets", ["hidden"]), models, errors)
    layers = _layers(request.get("layers"), models, errors)
    rankings = _rankings(request.get("rankings", []), corpus, errors)
    statistics = _option(request, STATISTICS, errors)
    probe_ablation = _probe_ablation(request.get("probe_ablation", False), corpus, errors)
    crossmodel = _crossmodel(request.get("crossmodel", []), len(models), errors)
    model_ablation = _model_ablation(request.get("model_ablation", False), project, models, errors)
    if model_ablation and not rankings and "rankings" not in errors:
        errors["model_ablation"] = ["Model-level ablation removes neurons along a ranking of this run; ask for "
                                    "at least one ranking too."]
    seed = _option(request, SEED, errors)
    aggregation = _aggregation(request.get("aggregation", "last"), errors)
    more = _validate_registered_kinds(request, errors)
    if not errors and not any((rankings, statistics, probe_ablation, crossmodel, *more.values())):
        errors["rankings"] = ["Ask for at least one ranking, for statistics or for a probe ablation (or, with "
                              "two or more models, for a cross-model ranking)."]
    if errors:
        raise ValidationError(errors)
    return {"models": [m.pk for m in models], "corpus": corpus.pk, "neuron_sets": sets, "layers": layers,
            "aggregation": aggregation, "rankings": rankings, "statistics": statistics,
            "probe_ablation": probe_ablation, "crossmodel": crossmodel, "model_ablation": model_ablation,
            "seed": seed, **more}


def _validate_registered_kinds(request: dict, errors: dict) -> dict:
    """The request's fields of step kinds registered with a ``request_field`` (``analysis.steps``), each in its
    kind's normal form; only the fields the request names."""
    cleaned = {}
    for kind in step_types():
        if kind.request_field and kind.request_field in request:
            try:
                cleaned[kind.request_field] = kind.clean_request(request[kind.request_field])
            except ValueError as error:
                errors[kind.request_field] = [str(error)]
    return cleaned


def _extraction_params(request: dict, corpus) -> ExtractionParams:
    return ExtractionParams(neuron_sets=tuple(request["neuron_sets"]), aggregation=request["aggregation"],
                            dtype="float32", label_column=corpus.label_column or "")


@dataclass(frozen=True)
class PlannedStep:
    """A step a request asks for, before any row exists: its result key is what ``Result.key`` would be."""

    kind: str
    title: str
    params: dict
    key: str
    needs: tuple[int, ...] = ()  # indices of the planned steps it needs
    model: object = None  # the ModelUpload it is about (None for a cross-model step)


@dataclass(frozen=True)
class RunPlan:
    """A validated request and every step it makes, in order (what ``create_run`` stores, and what the
    estimate on the new-analysis form looks up)."""

    request: dict
    corpus: object
    models: list
    params: ExtractionParams
    steps: list[PlannedStep]


def _model_ablation_step(model, ranking: PlannedStep, at: int, ablation: dict, seed: int) -> PlannedStep:
    """Remove the model's neurons along one ranking of the run and measure its own task on the test set."""
    curve = {k: ablation[k] for k in ("percents", "random_seeds", "modes")}
    key = sha256_json({"result": "model_ablation", "ranking": ranking.key,
                       "test_set": ablation["test_set_sha256"], **curve, "seed": seed})
    return PlannedStep(StepKind.MODEL_ABLATION,
                       f"Model ablation along the {ranking.params['method']} ranking: {model.name}",
                       {"model": model.pk, "ranking_key": ranking.key, "test_set": ablation["test_set"],
                        "test_set_sha256": ablation["test_set_sha256"], **curve, "seed": seed},
                       key, (at,), model)


def _crossmodel_step(entry: dict, extracts: dict, selection: dict) -> PlannedStep:
    """One cross-model ranking over every store of the run, keyed by the stores (not by the run's model order).
    ``extracts``: store key → (model, index of its planned extract step)."""
    store_keys = sorted(extracts)
    options = {k: v for k, v in entry.items() if k != "method"}
    key = sha256_json({"result": "crossmodel", "store_keys": store_keys, "method": entry["method"],
                       "options": options, **selection})
    names = ", ".join(extracts[k][0].name for k in store_keys)
    return PlannedStep(StepKind.CROSSMODEL, f"Cross-model {entry['method']}: {names}",
                       {"store_keys": store_keys, "models": {k: extracts[k][0].pk for k in store_keys},
                        "method": entry["method"], "options": options, **selection},
                       key, tuple(extracts[k][1] for k in store_keys))


def plan_run(project, request) -> RunPlan:
    """Validate ``request`` (``ValidationError`` as in ``validate_request``) and plan its steps and result keys,
    creating nothing. The one place result keys are computed for a run."""
    request = validate_request(project, request)
    corpus = project.corpus_uploads.get(pk=request["corpus"])
    models = list(project.model_uploads.filter(pk__in=request["models"]).order_by("pk"))
    params = _extraction_params(request, corpus)
    selection = {"neuron_sets": request["neuron_sets"], "layers": request["layers"]}
    steps: list[PlannedStep] = []

    def add(step: PlannedStep) -> int:
        steps.append(step)
        return len(steps) - 1

    extracts = {}  # store key → (model, index of its extract step)
    for model in models:
        store_key = extraction_key(model.sha256, corpus.sha256, params)
        extract = add(PlannedStep(StepKind.EXTRACT, f"Extract activations: {model.name} × {corpus.name}",
                                  {"model": model.pk, "corpus": corpus.pk, "extraction": params.key_fields()},
                                  store_key, (), model))
        extracts[store_key] = (model, extract)
        if request["statistics"]:
            key = sha256_json({"result": "statistics", "store": store_key, **selection})
            add(PlannedStep(StepKind.STATISTICS, f"Neuron statistics: {model.name}",
                            {"store_key": store_key, **selection}, key, (extract,), model))
        for ranking in request["rankings"]:
            ranking_params = {"store_key": store_key, **selection, **ranking, "seed": request["seed"]}
            key = sha256_json({"result": "ranking", **ranking_params})
            confidence = f", {ranking['bootstrap']} resamples" if ranking["bootstrap"] else ""
            confidence += f", consensus by {ranking['consensus']}" if ranking.get("consensus") else ""
            planned = PlannedStep(StepKind.RANKING, f"Ranking {ranking['method']}{confidence}: {model.name}",
                                  ranking_params, key, (extract,), model)
            at = add(planned)
            if request["model_ablation"]:
                add(_model_ablation_step(model, planned, at, request["model_ablation"], request["seed"]))
        if request["probe_ablation"]:
            ablation_params = {"store_key": store_key, **selection, **request["probe_ablation"], "method": "lca",
                               "seed": request["seed"]}
            key = sha256_json({"result": "probe_ablation", **ablation_params})
            add(PlannedStep(StepKind.PROBE_ABLATION, f"Probe ablation along the lca ranking: {model.name}",
                            ablation_params, key, (extract,), model))
        for kind in step_types():
            if kind.request_field and (value := request.get(kind.request_field)):
                for title, step_params, key in kind.plan(value, store_key, model, selection, request["seed"]):
                    add(PlannedStep(kind.kind, title, step_params, key, (extract,), model))
    for entry in request["crossmodel"]:
        add(_crossmodel_step(entry, extracts, selection))
    return RunPlan(request=request, corpus=corpus, models=models, params=params, steps=steps)


@transaction.atomic
def create_run(user, project, request) -> Run:
    """A run of ``request`` for ``project`` with its steps; the ready ones are sent to workers after commit.

    Raises ``PermissionDenied`` for a viewer and ``ValidationError`` (nothing stored) for a bad request."""
    if not can_write(user, project):
        raise PermissionDenied("Viewers cannot start runs; ask an owner for the editor role.")
    plan = plan_run(project, request)
    costs = _refuse_over_compute(user, plan)
    _refuse_over_storage(user, project, request, plan)
    run = Run.objects.create(project=project, created_by=user, request=plan.request)
    created: list[Step] = []
    for planned, cost in zip(plan.steps, costs):
        step = Step.objects.create(run=run, kind=planned.kind, title=planned.title, params=planned.params,
                                   result_key=planned.key, queue=step_type(planned.kind).queue,
                                   estimated_seconds=cost)
        step.needs.set([created[i] for i in planned.needs])
        created.append(step)
    write_log(run.pk, [f"Run created by {user.get_username()}: {len(created)} steps."])
    dispatch(run)
    run.refresh_from_db()
    if reason := waiting_reason(run):
        write_log(run.pk, [reason])
    return run


# ------------------------------------------------------------------------------------------------ the run quota


def _admit(run: Run) -> bool:
    """Give the run one of its creator's concurrent-run slots, if one is free (under a short lock on the user
    row, so two runs cannot both take the last slot)."""
    if Run.objects.filter(pk=run.pk, admitted=True).exists():
        return True
    from django.contrib.auth import get_user_model

    with transaction.atomic():
        user = get_user_model().objects.select_for_update().get(pk=run.created_by_id)
        if active_runs_of(user.pk) >= user.effective_run_limit:
            return False
        return bool(Run.objects.filter(pk=run.pk).update(admitted=True))


def _admit_waiting(user_id: int) -> None:
    """A run of this user finished: start their waiting runs, oldest first, while slots are free."""
    for waiting in Run.objects.filter(created_by_id=user_id, admitted=False, state=RunState.QUEUED).order_by(
            "created_at", "id"):
        dispatch(waiting)


# ------------------------------------------------------------------------------------------------ the log


def run_group(run_id: int) -> str:
    """The Channels group woken when a run's log or progress changes (a consumer then re-reads the rows)."""
    return f"run-{run_id}"


def _wake(run_id: int) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    try:
        async_to_sync(layer.group_send)(run_group(run_id), {"type": "run.changed", "run": run_id})
    except Exception as error:  # noqa: BLE001 — only a wake-up call: consumers also catch up on a timer
        log.warning("could not wake the channel group of run %s: %s", run_id, error)


def _wake_on_commit(run_id: int) -> None:
    transaction.on_commit(lambda: _wake(run_id))


def write_log(run_id: int, texts, step_id: int | None = None) -> None:
    """Append lines to a run's log in one short transaction, numbered from the run's counter."""
    texts = [t for t in texts if t]
    if not texts:
        return
    now = timezone.now()
    with transaction.atomic():
        last = Run.objects.select_for_update().values_list("log_seq", flat=True).get(pk=run_id)
        LogLine.objects.bulk_create(
            LogLine(run_id=run_id, step_id=step_id, seq=last + i, text=text, created_at=now)
            for i, text in enumerate(texts, start=1)
        )
        Run.objects.filter(pk=run_id).update(log_seq=last + len(texts))
        _wake_on_commit(run_id)


class LogBuffer:
    """Collects a worker's log lines and writes them in small batches (every ``every`` s or ``size`` lines).

    ``add`` writes only when a line arrives; a line followed by a long quiet computation is written by
    ``flush_if_due``, which the step's heartbeat thread calls on a timer. A lock keeps the two threads' batches
    whole and in order."""

    def __init__(self, run_id: int, step_id: int | None, every: float = 0.5, size: int = 50):
        self.run_id, self.step_id, self.every, self.size = run_id, step_id, every, size
        self.lines: list[str] = []
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def add(self, text: str) -> None:
        with self.lock:
            self.lines.append(text)
            if len(self.lines) >= self.size or time.monotonic() - self.last >= self.every:
                self._flush()

    def flush_if_due(self) -> None:
        """Write waiting lines once the oldest batch has waited ``every`` seconds."""
        with self.lock:
            if self.lines and time.monotonic() - self.last >= self.every:
                self._flush()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        lines, self.lines, self.last = self.lines, [], time.monotonic()
        write_log(self.run_id, lines, self.step_id)


# ------------------------------------------------------------------------------------------------ dispatch


def _send_on_commit(step_ids_and_kinds: list[tuple[int, str, str]]) -> None:
    def send():
        for step_id, kind, task_id in step_ids_and_kinds:
            try:
                send_step(kind, step_id, task_id)
            except Exception as error:  # noqa: BLE001 — the broker is down (a Redis restart): the row says queued
                log.warning("could not send step %s to the broker (%s); the reaper sends it again after "
                            "NEUROX_STEP_RESEND_SECONDS", step_id, error)

    if step_ids_and_kinds:
        transaction.on_commit(send)


def _queue(step_ids: list[int], kinds: dict[int, str], from_states, **unchanged) -> list[tuple[int, str, str]]:
    """Move each step to ``queued`` (if it still is in ``from_states`` and has the ``unchanged`` values) with a
    fresh task id; returns what to send."""
    sent = []
    now = timezone.now()
    for step_id in step_ids:
        task_id = str(uuid.uuid4())
        if Step.objects.filter(pk=step_id, state__in=from_states, **unchanged).update(
                state=StepState.QUEUED, queued_at=now, task_id=task_id, worker=""):
            sent.append((step_id, kinds[step_id], task_id))
    return sent


def _reuse(step: Step) -> bool:
    """Finish a pending step at once when its result exists."""
    if not Result.objects.filter(key=step.result_key, state=ResultState.READY).exists():
        return False
    now = timezone.now()
    if Step.objects.filter(pk=step.pk, state__in=(StepState.PENDING, StepState.QUEUED, StepState.RUNNING)).update(
            state=StepState.SUCCEEDED, reused=True, finished_at=now, done=1, total=1, unit="result"):
        write_log(step.run_id, [f"{step.title}: reused the existing result {step.result_key[:12]}."], step.pk)
    return True


def dispatch(run: Run) -> None:
    """Start the run's pending steps whose needs have succeeded: reuse an existing result, wait for another
    run's step building the same result, or queue a worker message (sent after commit). Then settle the run."""
    with transaction.atomic():
        changed = True
        while changed:
            changed = False
            ready, kinds = [], {}
            pending = Step.objects.filter(run=run, state=StepState.PENDING).prefetch_related("needs")
            for step in pending:
                if any(need.state != StepState.SUCCEEDED for need in step.needs.all()):
                    continue
                if _reuse(step):
                    changed = True
                    continue
                builder = (Result.objects.filter(key=step.result_key, state=ResultState.BUILDING,
                                                 builder__state__in=ACTIVE_STEP_STATES)
                           .exclude(builder=step).values_list("builder__run_id", flat=True).first())
                if builder is None:
                    ready.append(step.pk)
                    kinds[step.pk] = step.kind
            if ready and not _admit(run):
                break  # waits for a free slot; reused steps above needed none
            _send_on_commit(_queue(ready, kinds, (StepState.PENDING,)))
        _settle(run.pk)


def _settle(run_id: int) -> None:
    """A run whose steps all succeeded has succeeded."""
    states = set(Step.objects.filter(run_id=run_id).values_list("state", flat=True))
    if states <= {StepState.SUCCEEDED}:
        now = timezone.now()
        if Run.objects.filter(pk=run_id).exclude(state__in=FINISHED_RUN_STATES).update(
                state=RunState.SUCCEEDED, finished_at=now):
            Run.objects.filter(pk=run_id, started_at__isnull=True).update(started_at=now)  # every step reused
            write_log(run_id, ["Run succeeded."])
            _admit_waiting(Run.objects.values_list("created_by_id", flat=True).get(pk=run_id))


def _dispatch_waiting_for(key: str) -> None:
    """Runs with a step pending on ``key`` (it waited for another run building it) get another look."""
    for run in Run.objects.filter(steps__result_key=key, steps__state=StepState.PENDING).distinct():
        dispatch(run)


# ------------------------------------------------------------------------------------------------ a worker's side


def _take_a_turn(queue: str, named: int, worker: str, now) -> int | None:
    """Move the fairest queued step of ``queue`` (``fair_share``) to running for ``worker``; its id, or None
    when none is queued. Two workers asking at once take different steps: each claim is a conditional update."""
    for step_id in fair_share.turn_order(queue, named):
        if Step.objects.filter(pk=step_id, state=StepState.QUEUED).update(
                state=StepState.RUNNING, attempts=F("attempts") + 1, worker=worker, started_at=now,
                heartbeat_at=now):
            return step_id
    return None


def claim_step(step_id: int, worker: str) -> Step | None:
    """Take the turn the message for step ``step_id`` brings: the fairest queued step of that step's queue,
    for ``worker``, and hold its result's build. None: nothing to compute (nothing queued there any more, or
    the step taken finds its result exists or another run building it right now)."""
    now = timezone.now()
    queue = Step.objects.filter(pk=step_id).values_list("queue", flat=True).first()
    step_id = _take_a_turn(queue, step_id, worker, now) if queue is not None else None
    if step_id is None:
        return None
    step = Step.objects.select_related("run").get(pk=step_id)
    Run.objects.filter(pk=step.run_id, state=RunState.QUEUED).update(state=RunState.RUNNING, started_at=now)
    try:
        with transaction.atomic():
            Result.objects.create(kind=step_type(step.kind).result_kind, key=step.result_key, builder=step)
        return step
    except IntegrityError:
        pass
    if _reuse(step):
        dispatch(step.run)
        return None
    # Someone holds the build. Ours (a requeued attempt) or a builder that is no longer active: take it over.
    if Result.objects.filter(key=step.result_key, state=ResultState.BUILDING, builder=step).exists() or (
            Result.objects.filter(key=step.result_key, state=ResultState.BUILDING)
            .exclude(builder__state__in=ACTIVE_STEP_STATES).update(builder=step)):
        return step
    if Step.objects.filter(pk=step_id, state=StepState.RUNNING).update(
            state=StepState.PENDING, worker="", attempts=F("attempts") - 1):
        other = Result.objects.filter(key=step.result_key).values_list("builder__run_id", flat=True).first()
        write_log(step.run_id, [f"{step.title}: waiting for run {other}, which is computing the same result."],
                  step.pk)
    dispatch(step.run)  # the builder may have finished between our look and our going back to pending
    return None


def heartbeat(step_id: int, done: int | None = None, total: int | None = None, unit: str | None = None) -> None:
    now = timezone.now()
    fields = {"heartbeat_at": now}
    if done is not None:
        fields.update(done=done, total=total, unit=unit or "")
    moved = Step.objects.filter(pk=step_id, state=StepState.RUNNING).update(**fields)
    Run.objects.filter(steps__pk=step_id, state=RunState.RUNNING).update(heartbeat_at=now)
    if moved and done is not None:
        _wake(Step.objects.values_list("run_id", flat=True).get(pk=step_id))


def should_stop(step_id: int) -> bool:
    """True once the step is no longer running for its run: cancelled, failed, or taken back by the reaper."""
    return not Step.objects.filter(pk=step_id, state=StepState.RUNNING, run__state=RunState.RUNNING).exists()


def finish_step(step: Step, path: str, size: int, meta: dict) -> None:
    """The step's result is complete on disk: the Result row becomes ready and what needed it can start."""
    now = timezone.now()
    with transaction.atomic():
        Result.objects.filter(key=step.result_key, builder=step).update(
            state=ResultState.READY, builder=None, path=path, bytes=size, meta=meta)
        finished = Step.objects.filter(pk=step.pk, state=StepState.RUNNING).update(
            state=StepState.SUCCEEDED, finished_at=now, done=F("total"))
        if finished:
            seconds = (now - step.started_at).total_seconds() if step.started_at else 0.0
            write_log(step.run_id, [f"{step.title}: done in {seconds:.1f} s."], step.pk)
        else:  # cancelled after its last chunk: the complete result is kept, so no later run computes it again
            write_log(step.run_id, [f"{step.title}: finished as it was stopped; its result is kept for reuse."],
                      step.pk)
        dispatch(step.run)
        _dispatch_waiting_for(step.result_key)


def _release_build(step: Step) -> None:
    Result.objects.filter(key=step.result_key, builder=step, state=ResultState.BUILDING).delete()
    _dispatch_waiting_for(step.result_key)


def _revoke(task_ids: list[str]) -> None:
    if task_ids and not settings.CELERY_TASK_ALWAYS_EAGER:
        from celery import current_app as app  # the project's app (neurox_site/__init__ loads it)

        transaction.on_commit(lambda: app.control.revoke(task_ids))


def _stop_unfinished(run_id: int, reason: str, exclude: int | None = None) -> None:
    """Every unfinished step of the run ends ``cancelled``; queued messages are revoked, running steps stop at
    their next chunk boundary (their ``should_stop`` turns true)."""
    steps = Step.objects.filter(run_id=run_id).exclude(state__in=FINISHED_STEP_STATES).exclude(pk=exclude)
    queued = list(steps.filter(state=StepState.QUEUED).exclude(task_id="").values_list("task_id", flat=True))
    steps.update(state=StepState.CANCELLED, finished_at=timezone.now(), error=reason)
    _revoke(queued)


def fail_step(step: Step, reason: str) -> None:
    """The step failed (``reason``: one paragraph for a person); the run fails and its other steps stop."""
    now = timezone.now()
    with transaction.atomic():
        if not Step.objects.filter(pk=step.pk, state=StepState.RUNNING).update(
                state=StepState.FAILED, finished_at=now, error=reason):
            _release_build(step)  # it was cancelled meanwhile: its run no longer cares, others may build it
            write_log(step.run_id, [f"{step.title}: stopped."], step.pk)
            return
        write_log(step.run_id, [f"{step.title} failed: {reason}"], step.pk)
        if Run.objects.filter(pk=step.run_id).exclude(state__in=FINISHED_RUN_STATES).update(
                state=RunState.FAILED, finished_at=now, error=f"{step.title} failed: {reason}"):
            _stop_unfinished(step.run_id, f"Not finished: “{step.title}” failed.", exclude=step.pk)
            write_log(step.run_id, ["Run failed."])
            _admit_waiting(step.run.created_by_id)
        _release_build(step)


def step_stopped(step: Step) -> None:
    """The engine raised ``Cancelled`` at a chunk boundary: the step ends cancelled and its build is released
    (the activation store's journal lets a later run resume where this one stopped)."""
    with transaction.atomic():
        Step.objects.filter(pk=step.pk, state=StepState.RUNNING).update(
            state=StepState.CANCELLED, finished_at=timezone.now())
        write_log(step.run_id, [f"{step.title}: stopped."], step.pk)
        _release_build(step)


# ------------------------------------------------------------------------------------------------ a person's side


def cancel_run(user, run: Run) -> Run:
    if not can_write(user, run.project):
        raise PermissionDenied("Viewers cannot cancel runs.")
    return _cancel(user, run)


def _cancel(user, run: Run) -> Run:
    with transaction.atomic():
        if not Run.objects.filter(pk=run.pk).exclude(state__in=FINISHED_RUN_STATES).update(
                state=RunState.CANCELLED, finished_at=timezone.now()):
            raise RunStateError("This run has already finished; there is nothing to cancel.", "run_finished")
        _stop_unfinished(run.pk, f"Cancelled by {user.get_username()}.")
        write_log(run.pk, [f"Run cancelled by {user.get_username()}."])
        _admit_waiting(run.created_by_id)
    run.refresh_from_db()
    return run


def retry_run(user, run: Run) -> Run:
    """Run a failed or cancelled run again: its succeeded steps are kept, the others start afresh."""
    if not can_write(user, run.project):
        raise PermissionDenied("Viewers cannot retry runs.")
    with transaction.atomic():
        if not Run.objects.filter(pk=run.pk, state__in=(RunState.FAILED, RunState.CANCELLED)).update(
                state=RunState.QUEUED, error="", finished_at=None, admitted=False):
            raise RunStateError("Only a failed or cancelled run can be retried.", "run_not_retryable")
        Step.objects.filter(run=run).exclude(state=StepState.SUCCEEDED).update(
            state=StepState.PENDING, error="", attempts=0, worker="", done=0, started_at=None, finished_at=None,
            heartbeat_at=None, queued_at=None)
        write_log(run.pk, [f"Run retried by {user.get_username()}; finished steps are kept."])
        run.refresh_from_db()
        dispatch(run)
    return run


# ------------------------------------------------------------------------------------------------ the reaper


def _lost_queued_steps(lost_before) -> list[Step]:
    """Steps queued (sent) before ``lost_before`` whose message is probably gone. A queue whose broker holds at
    least as many messages as it has queued steps lost none: its steps only wait behind busy workers, and
    resending them would pile up duplicates."""
    stale = list(Step.objects.filter(state=StepState.QUEUED, queued_at__lt=lost_before).order_by("queued_at"))
    lost = []
    for queue in sorted({step.queue for step in stale}):
        waiting = messages_waiting(queue)
        if waiting is not None and waiting >= Step.objects.filter(state=StepState.QUEUED, queue=queue).count():
            continue
        lost += [step for step in stale if step.queue == queue]
    return lost


def reap(now=None) -> dict:
    """Recover from what no broker recovers from: a worker killed outright (its running step's heartbeat goes
    stale: requeue it, up to ``NEUROX_STEP_MAX_ATTEMPTS`` attempts, then fail it saying so) and a lost queue
    message (a step queued for longer than ``NEUROX_STEP_RESEND_SECONDS``: send it again; a duplicate is
    harmless, the claim lets only one delivery run)."""
    now = now or timezone.now()
    stale_seconds = settings.NEUROX_STEP_STALE_SECONDS
    max_attempts = settings.NEUROX_STEP_MAX_ATTEMPTS
    requeued, failed, resent = [], [], []
    for step in Step.objects.filter(state=StepState.RUNNING,
                                    heartbeat_at__lt=now - timedelta(seconds=stale_seconds)):
        silent = f"the worker {step.worker or '?'} running it stopped answering (no heartbeat for over " \
                 f"{stale_seconds} s: killed, out of memory, or its machine went down)"
        if step.attempts >= max_attempts:
            charge_lost_attempt(step)
            fail_step(step, f"Gave up after {step.attempts} attempts: each time {silent}. If it ran out of "
                            "memory, choose fewer neuron sets or layers, or a smaller corpus.")
            failed.append(step.pk)
            continue
        with transaction.atomic():
            charge_lost_attempt(step)  # before _queue clears the worker; both only while the heartbeat is stale
            # only if its heartbeat is still the stale one we read (the worker did not just come back)
            sent = _queue([step.pk], {step.pk: step.kind}, (StepState.RUNNING,), heartbeat_at=step.heartbeat_at)
            if sent:
                write_log(step.run_id, [f"{step.title}: {silent}; sent again (attempt {step.attempts + 1} of "
                                        f"{max_attempts})."], step.pk)
                _send_on_commit(sent)
                requeued.append(step.pk)
    lost_before = now - timedelta(seconds=settings.NEUROX_STEP_RESEND_SECONDS)
    for step in _lost_queued_steps(lost_before):
        with transaction.atomic():
            sent = _queue([step.pk], {step.pk: step.kind}, (StepState.QUEUED,))
            if sent:
                write_log(step.run_id, [f"{step.title}: no worker took it for "
                                        f"{settings.NEUROX_STEP_RESEND_SECONDS} s; sent again."], step.pk)
                _send_on_commit(sent)
                resent.append(step.pk)
    for waiting in Run.objects.filter(admitted=False, state=RunState.QUEUED).values_list("created_by_id",
                                                                                         flat=True).distinct():
        _admit_waiting(waiting)  # in case a finishing run's wake-up was missed
    return {"requeued": requeued, "failed": failed, "resent": resent, "log_lines_removed": remove_old_log_lines(now)}


# ------------------------------------------------------------------------------------------------ reclaiming space


def reclaim_unreferenced_results(results=None) -> tuple[int, int]:
    """Delete ready results that no step of any run refers to (their runs, or projects, were deleted), files
    included; ``results`` narrows the candidates (the admin's selection). Returns (results, bytes) reclaimed."""
    candidates = (Result.objects.all() if results is None else results).filter(state=ResultState.READY)
    unreferenced = candidates.exclude(key__in=Step.objects.values("result_key"))
    count = size = 0
    for result in unreferenced:
        with transaction.atomic():
            # deleted only if still unreferenced now (a run created meanwhile may have reused it)
            deleted, _ = Result.objects.filter(pk=result.pk).exclude(
                key__in=Step.objects.values("result_key")).delete()
        if deleted:
            _remove_result_files(results_root(), result.path)
            object_store.remove(result.path)  # and from the bucket, with NEUROX_RESULTS_IN_S3
            count, size = count + 1, size + result.bytes
    return count, size


def _remove_result_files(root, relative: str) -> None:
    import shutil
    from pathlib import Path

    if not relative:
        return
    path = (Path(root) / relative).resolve()
    if Path(root).resolve() not in path.parents:
        return  # never outside the results folder
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


# ------------------------------------------------------------------------------------------------ metering


def record_compute(step_id: int, worker: str, attempt: int, seconds: float, device: str) -> bool:
    """Add the seconds one attempt held its worker to the step (and where it computed). Only while that attempt
    still holds the step (same worker, same attempt number): an attempt the reaper took back was charged by
    ``charge_lost_attempt`` instead, so no second is counted twice. A reused step records nothing (0 s)."""
    return bool(Step.objects.filter(pk=step_id, worker=worker, attempts=attempt).update(
        compute_seconds=F("compute_seconds") + max(0.0, seconds), device=device))


def charge_lost_attempt(step: Step) -> bool:
    """The reaper takes back a running step whose worker stopped answering (killed, out of memory): charge the
    attempt from its claim to its last heartbeat, the last moment it is known to have held the worker. Only while
    its heartbeat is still the stale one read (a worker that came back records its own time)."""
    if step.started_at is None or step.heartbeat_at is None:
        return False
    seconds = max(0.0, (step.heartbeat_at - step.started_at).total_seconds())
    return bool(Step.objects.filter(pk=step.pk, state=StepState.RUNNING, worker=step.worker,
                                    attempts=step.attempts, heartbeat_at=step.heartbeat_at).update(
        compute_seconds=F("compute_seconds") + seconds))


# ------------------------------------------------------------------------------------------------ log retention


def remove_old_log_lines(now=None) -> int:
    """Delete the log lines older than ``NEUROX_LOG_RETENTION_DAYS`` (0: keep every line) of finished runs; a
    run still going keeps its whole log. The run's line counter is left alone, so numbering goes on and a client
    asking for lines after N is unaffected. Returns how many lines were removed (run by the reaper)."""
    days = settings.NEUROX_LOG_RETENTION_DAYS
    if not days or days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    removed, _ = LogLine.objects.filter(created_at__lt=cutoff, run__state__in=FINISHED_RUN_STATES).delete()
    return removed


# ------------------------------------------------------------------------------------------------ compute


def _refuse_over_compute(user, plan: RunPlan) -> list[float]:
    """Each planned step's cost in compute-seconds (``estimates.plan_cost``); ``ValidationError`` (a 400 under
    ``compute``, nothing stored) when the run's cost is over the user's per-run limit, or when what their compute
    quota already counts this period (``selectors.compute_seconds_committed``) plus this cost is over the quota.
    Both limits resolve user → quota group → site default (``User.limit``). The lock on the user row makes two
    runs created at once see each other's cost."""
    from django.contrib.auth import get_user_model

    from analysis.runs.estimates import duration_text, limit_text, plan_cost
    from analysis.runs.selectors import compute_period_frees, compute_seconds_committed

    costs = plan_cost(plan)
    cost, per_run = sum(costs), user.limit("max_run_compute_seconds")
    biggest = max(zip(costs, plan.steps), key=lambda pair: pair[0], default=(0, None))[1]
    hint = f" The largest part is “{biggest.title}”." if biggest and cost else ""
    if cost > per_run:
        raise ValidationError({"compute": [
            f"This run would take {duration_text(cost)} of compute ({cost:,.0f} compute-seconds); your limit per run "
            f"is {limit_text(per_run)} ({per_run:,} s).{hint} Ask for fewer bootstrap resamples, rankings, ablation "
            "points or random seeds, fewer layers, neuron sets or models, or a smaller corpus; split the work into "
            "several runs (what one computes, the next reuses); or ask an administrator for a larger limit."]})
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    quota, used = user.limit("compute_quota_seconds"), compute_seconds_committed(user)
    if cost and used + cost > quota:
        frees = compute_period_frees(user)
        when = (f" Compute used in the last {settings.NEUROX_COMPUTE_PERIOD_DAYS} days counts; the oldest of it "
                f"leaves the period on {frees:%Y-%m-%d %H:%M} UTC." if frees else
                " Most of it is held by your runs that have not finished: it is freed as they finish or when "
                "you cancel them.")
        raise ValidationError({"compute": [
            f"This run would take {duration_text(cost)} of compute ({cost:,.0f} compute-seconds), and "
            f"{duration_text(max(0.0, quota - used)).removeprefix('about ')} of your compute quota of "
            f"{limit_text(quota)} per {settings.NEUROX_COMPUTE_PERIOD_DAYS} days is left ({used:,.0f} s used or held "
            f"by your unfinished runs).{when} Make the run smaller, or ask an administrator for a larger quota."]})
    return costs


# ------------------------------------------------------------------------------------------------ storage


def _refuse_over_storage(user, project, request, plan: RunPlan) -> None:
    """A run whose new results would take its creator over their storage quota is refused (``ValidationError``
    under ``storage``, a 400; nothing stored). What it adds (the rule: ``analysis.runs.selectors.results_bytes_of``):
    the estimated size of the activation stores it would compute, and the full size of the ready results of
    others it would reuse that none of the user's runs refers to yet."""
    from accounts.quotas import QuotaExceeded, check_storage, human_bytes
    from analysis.runs import estimates
    from analysis.runs.selectors import results_bytes_new_to

    new_disk = estimates.estimate(project, request, plan).disk_bytes
    reused = results_bytes_new_to(user, [step.key for step in plan.steps])
    try:
        check_storage(user, new_disk + reused)
    except QuotaExceeded as error:
        parts = f" ({human_bytes(new_disk)} new, {human_bytes(reused)} reused from others' runs)" if reused else ""
        raise ValidationError({"storage": [
            f"This run would add about {human_bytes(error.requested)} of results{parts} but only "
            f"{human_bytes(max(0, error.limit - error.used))} of your {human_bytes(error.limit)} storage quota is "
            f"left ({human_bytes(error.used)} used by your uploads and your runs' results). Delete runs or uploads "
            "you no longer need, choose fewer models, neuron sets or a smaller corpus, or ask an administrator for "
            "a larger quota."]}) from None


# ------------------------------------------------------------------------------------------------ operators


def cancel_run_as_operator(operator, run: Run) -> Run:
    """An operator (the admin's "change run" permission; superusers have it) cancels anyone's run, e.g. one that
    holds the workers; the run's log says who. ``RunStateError`` if it has already finished."""
    if not (operator.is_active and operator.is_staff and operator.has_perm("analysis.change_run")):
        raise PermissionDenied("Only operators with the change-run permission cancel others' runs.")
    return _cancel(operator, run)
