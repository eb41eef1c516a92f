"""The realtime path: a typed sentence's per-word activations, and manipulation, answered by `realtime` workers
while the HTTP request waits.

Three parts, one place each:

* the web side: :func:`validate_activations` / :func:`validate_manipulation` check a request against the project
  (its models, the model's layers and width) so nothing is queued for bad input; :func:`ask` sends the task by
  its name (``ACTIVATIONS_TASK``, ``MANIPULATE_TASK``: the web side does not import the worker's modules), waits
  at most ``NEUROX_REALTIME_TIMEOUT`` and turns "no realtime worker" and "too slow" into
  :class:`RealtimeUnavailable` / :class:`RealtimeTimeout`;
* the worker side: :class:`ModelCache` keeps recently used models loaded (LRU bounded by parameter bytes) and
  :func:`compute_activations` / :func:`compute_manipulation` do the work;
* :func:`configure_torch_threads`, called at every task start on every queue.

Nothing here writes a row: the realtime path keeps no state but the worker's cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

REALTIME_QUEUE = "realtime"
ACTIVATIONS_TASK = "analysis.tasks.realtime_activations"  # registered by analysis.tasks
MANIPULATE_TASK = "analysis.tasks.realtime_manipulate"
EDIT_MODES = ("all", "words")  # a manipulation request changes every word or the listed ones (a recipe's label
# positions, analysis.workspace.recipes.POSITION_MODES, are turned into word positions before the request)
AGGREGATIONS = ("first", "last", "mean")
MAX_TOP_K = 100
MAX_POOL = 2000
MAX_EDITS = 500
_LIVE_KEY = "neurox:realtime:worker-live"


class RealtimeRequestError(ValueError):
    """The request cannot be answered as sent (400); ``field`` names the part to change."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


class RealtimeUnavailable(RuntimeError):
    """No worker consumes the realtime queue (503)."""


class RealtimeTimeout(RuntimeError):
    """A realtime worker did not answer in time (504)."""


# ------------------------------------------------------------------------------------------------ torch threads


_threads_set_to: int | None = None


def torch_threads_for(queue: str) -> int:
    if settings.NEUROX_TORCH_THREADS > 0:
        return settings.NEUROX_TORCH_THREADS
    if queue == REALTIME_QUEUE:
        return 1
    return max(1, (os.cpu_count() or 1) - 1)


def configure_torch_threads(queue: str) -> int:
    """Set torch's intra-op threads for this worker process once (tasks call it first)."""
    global _threads_set_to
    wanted = torch_threads_for(queue)
    if _threads_set_to != wanted:
        import torch

        torch.set_num_threads(wanted)
        _threads_set_to = wanted
        logger.info("torch threads for %s work: %d", queue, wanted)
    return wanted


# ------------------------------------------------------------------------------------------------ validation


def _words(sentence) -> list[str]:
    if not isinstance(sentence, str):
        raise RealtimeRequestError("sentence", "Send the sentence as text.")
    words = sentence.split()
    if not words:
        raise RealtimeRequestError("sentence", "Type a sentence: it is empty.")
    limit = settings.NEUROX_REALTIME_MAX_WORDS
    if len(words) > limit:
        raise RealtimeRequestError("sentence", f"The sentence has {len(words)} words; the realtime path takes at "
                                   f"most {limit}. Shorten it.")
    return words


def _model_of(project, model_id):
    try:
        return project.model_uploads.get(pk=int(model_id))
    except (ValueError, TypeError, project.model_uploads.model.DoesNotExist):
        raise RealtimeRequestError("model", f"Model {model_id} is not one of this project's models; choose one "
                                   "from the project's Models list (an id).") from None


def _neuron_sets(model) -> list[str]:
    if model.model_kind == "encoder-decoder":
        return ["enc.hidden", "enc.mlp", "dec.hidden", "dec.mlp"]
    return ["hidden", "mlp"]


def _layer_count(model, neuron_set: str) -> int | None:
    if model.n_layers is None:
        return None
    return model.n_layers + 1 if neuron_set.endswith("hidden") else model.n_layers


def _neuron(model, text, field: str):
    """A NeuronId of ``model`` from its label (``L3:117``, ``mlp.L2:5``); units of mlp sets are checked by the
    worker, which knows the FFN width."""
    from analysis.engine.neurons import NeuronId

    try:
        neuron = NeuronId.parse(str(text))
    except ValueError:
        raise RealtimeRequestError(field, f"{text!r} is not a neuron: write e.g. 'L3:117' (hidden) or "
                                   "'mlp.L2:5'.") from None
    sets = _neuron_sets(model)
    if neuron.set not in sets:
        raise RealtimeRequestError(field, f"{neuron.label}: this model has the neuron sets {', '.join(sets)}.")
    layers = _layer_count(model, neuron.set)
    if layers is not None and neuron.layer >= layers:
        raise RealtimeRequestError(field, f"{neuron.label}: layer {neuron.layer} does not exist; the {neuron.set} "
                                   f"set has layers 0–{layers - 1}.")
    if neuron.set.endswith("hidden") and model.hidden_size and neuron.unit >= model.hidden_size:
        raise RealtimeRequestError(field, f"{neuron.label}: unit {neuron.unit} does not exist; the model has "
                                   f"{model.hidden_size} hidden units (0–{model.hidden_size - 1}).")
    return neuron


def _bounded_int(data, name, default, low, high) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RealtimeRequestError(name, f"{name} must be a whole number from {low} to {high}.")
    return value


def _aggregation(data) -> str:
    aggregation = data.get("aggregation", "last")
    if aggregation not in AGGREGATIONS:
        raise RealtimeRequestError("aggregation", f"aggregation must be one of {', '.join(AGGREGATIONS)}.")
    return aggregation


def _model_part(model) -> dict:
    return {"model": model.pk, "sha256": model.sha256}


def validate_activations(project, data: dict) -> dict:
    """The task's arguments for a per-word activations request, or :class:`RealtimeRequestError`."""
    model = _model_of(project, data.get("model"))
    words = _words(data.get("sentence"))
    sets = _neuron_sets(model)
    neuron_set = data.get("neuron_set", sets[0])
    if neuron_set not in sets:
        raise RealtimeRequestError("neuron_set", f"neuron_set must be one of {', '.join(sets)}.")
    pool = data.get("pool")
    if pool is not None:
        if not isinstance(pool, list) or not pool or len(pool) > MAX_POOL:
            raise RealtimeRequestError("pool", f"pool is a list of 1 to {MAX_POOL} neuron labels, e.g. ['L3:117'].")
        pool = [_neuron(model, label, "pool").label for label in dict.fromkeys(map(str, pool))]
    return {**_model_part(model), "words": words, "neuron_set": neuron_set, "pool": pool,
            "top_k": _bounded_int(data, "top_k", 10, 1, MAX_TOP_K), "aggregation": _aggregation(data)}


def validate_manipulation(project, data: dict) -> dict:
    """The task's arguments for a manipulation request, or :class:`RealtimeRequestError`."""
    model = _model_of(project, data.get("model"))
    words = _words(data.get("sentence"))
    mode = data.get("mode", "all")
    edits = _edits(model, data.get("edits"))
    if mode not in EDIT_MODES:
        raise RealtimeRequestError("mode", "mode must be 'all' (change the neurons at every word) or 'words' "
                                   "(only at the words listed in `words`).")
    return {**_model_part(model), "words": words, "edits": edits, "mode": mode,
            "chosen_words": _chosen_words(data.get("words"), len(words)) if mode == "words" else None,
            "mask_words": _mask_words(data.get("mask_words"), len(words)),
            "max_new_tokens": _bounded_int(data, "max_new_tokens", 20, 1, 64),
            "top_k": _bounded_int(data, "top_k", 5, 1, 20)}


def _edits(model, edits) -> list[dict]:
    if not isinstance(edits, list) or not edits or len(edits) > MAX_EDITS:
        raise RealtimeRequestError("edits", f"edits is a list of 1 to {MAX_EDITS} changes, e.g. "
                                   "[{\"neuron\": \"L3:117\", \"operation\": \"zero\"}].")
    return [_edit(model, edit) for edit in edits]


def _edit(model, edit) -> dict:
    from analysis.engine.interventions import OPERATIONS

    if not isinstance(edit, dict):
        raise RealtimeRequestError("edits", "Each edit is an object with neuron, operation and value.")
    neuron = _neuron(model, edit.get("neuron"), "edits")
    operation = edit.get("operation", "zero")
    if operation not in OPERATIONS:
        raise RealtimeRequestError("edits", f"{neuron.label}: operation must be one of {', '.join(OPERATIONS)}.")
    value = edit.get("value", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise RealtimeRequestError("edits", f"{neuron.label}: value must be a finite number.")
    return {"neuron": neuron.label, "operation": operation, "value": float(value)}


def _are_positions(value, length: int) -> bool:
    return isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < length
                                           for i in value)


def _chosen_words(chosen, length: int) -> list[int]:
    if not chosen or not _are_positions(chosen, length):
        raise RealtimeRequestError("words", f"With mode 'words', list the word positions to change (0 to "
                                   f"{length - 1}).")
    return sorted(set(chosen))


def _mask_words(mask_words, length: int) -> list[int] | None:
    if mask_words is not None and not _are_positions(mask_words, length):
        raise RealtimeRequestError("mask_words", f"mask_words lists word positions (0 to {length - 1}).")
    return mask_words


# ------------------------------------------------------------------------------------------------ web side


def realtime_worker_listening() -> bool:
    """Whether some worker consumes the realtime queue (asked over the broker, as /health/workers/ does;
    a yes is believed for NEUROX_REALTIME_WORKER_CHECK_SECONDS, a no is asked again next time)."""
    if cache.get(_LIVE_KEY):
        return True
    from celery import current_app as app  # the project's app (neurox_site/__init__ loads it)

    try:
        replies = app.control.inspect(timeout=0.5).active_queues() or {}
    except OSError:
        return False
    live = any(q.get("name") == REALTIME_QUEUE for queues in replies.values() for q in queues)
    if live:
        cache.set(_LIVE_KEY, True, settings.NEUROX_REALTIME_WORKER_CHECK_SECONDS)
    return live


UNAVAILABLE_MESSAGE = ("No realtime worker is running; start one with `celery -A neurox_site worker -Q realtime "
                       "--concurrency 1` (scripts/serve starts one for you), then try again.")


def ask(task_name: str, arguments: dict) -> dict:
    """Send the task ``task_name`` to the realtime queue and wait for its answer; a request error the worker
    found (a unit beyond the FFN width, a model that cannot load) comes back as :class:`RealtimeRequestError`."""
    from celery.exceptions import TaskRevokedError, TimeoutError as CeleryTimeout

    from celery import current_app as app  # the project's app (neurox_site/__init__ loads it)

    if not settings.CELERY_TASK_ALWAYS_EAGER and not realtime_worker_listening():
        raise RealtimeUnavailable(UNAVAILABLE_MESSAGE)
    timeout = settings.NEUROX_REALTIME_TIMEOUT
    result = app.tasks[task_name].apply_async(args=[arguments], queue=REALTIME_QUEUE, expires=timeout)
    try:
        answer = result.get(timeout=timeout, interval=0.01, propagate=True)
    except (CeleryTimeout, TaskRevokedError):  # revoked: the message waited past its expiry in the queue
        cache.delete(_LIVE_KEY)  # the worker may have gone: ask again next time
        result.revoke()
        raise RealtimeTimeout(f"The realtime worker did not answer within {timeout:g} s (it may be busy with "
                              "other requests or loading a large model); try again in a moment.") from None
    finally:
        with contextlib.suppress(FileNotFoundError):  # the file:// backend has no result to forget after a timeout
            result.forget()
    if "error" in answer:
        raise RealtimeRequestError(answer["error"]["field"], answer["error"]["message"])
    return answer


# ------------------------------------------------------------------------------------------------ worker side


def parameter_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


class ModelCache:
    """Loaded models by key (the model's sha256), least recently used evicted first while the total bytes
    exceed ``max_bytes``. A model larger than the bound alone is still kept (the bound then holds just it).
    ``loads`` and ``hits`` count what happened, for the answer and the tests."""

    def __init__(self, max_bytes: int, size_of: Callable[[Any], int] = lambda lm: parameter_bytes(lm.model)):
        self.max_bytes, self.size_of = max_bytes, size_of
        self.entries: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self.loads = self.hits = 0
        self.lock = threading.Lock()

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.entries.values())

    def get(self, key: str, load: Callable[[], Any]) -> tuple[Any, bool]:
        """(the value, whether it was already loaded)."""
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                self.hits += 1
                return self.entries[key][0], True
            value = load()
            size = self.size_of(value)
            self.loads += 1
            while self.entries and self.total_bytes + size > self.max_bytes:
                evicted, _ = self.entries.popitem(last=False)
                logger.info("realtime cache: evicted model %s", evicted[:12])
            self.entries[key] = (value, size)
            logger.info("realtime cache: loaded model %s (%d bytes)", key[:12], size)
            return value, False


_cache: ModelCache | None = None


def model_cache() -> ModelCache:
    global _cache
    if _cache is None:
        _cache = ModelCache(settings.NEUROX_REALTIME_CACHE_BYTES)
    return _cache


def _loaded(arguments: dict):
    def load():
        from analysis.engine.loading import load_model
        from projects.models import ModelUpload
        from projects.services.storage import local_folder

        try:
            upload = ModelUpload.objects.get(pk=arguments["model"])
        except ModelUpload.DoesNotExist:
            raise RealtimeRequestError("model", "This model was deleted a moment ago; choose another.") from None
        return load_model(local_folder(upload), sha256=arguments["sha256"])

    cache_ = model_cache()
    lm, hit = cache_.get(arguments["sha256"], load)
    return lm, {"hit": hit, "loads": cache_.loads, "models": len(cache_.entries)}


def _encode(lm, words):
    from analysis.engine.manipulation import ManipulationError, encode_words

    try:
        return encode_words(lm, words)
    except ManipulationError as error:
        raise RealtimeRequestError("sentence", f"{str(error)[:1].upper()}{str(error)[1:]}.") from None


def _sites_of_set(lm, neuron_set: str):
    sites = lm.neuron_sites().get(neuron_set)
    if not sites:
        raise RealtimeRequestError("neuron_set", f"This model has no {neuron_set} neurons.")
    return sites


def _check_units(lm, neurons, field: str) -> None:
    by_key = {s.key: s for sites in lm.neuron_sites().values() for s in sites}
    for n in neurons:
        site = by_key.get((n.set, n.layer))
        if site is None or n.unit >= site.units:
            width = f"{site.units} units (0–{site.units - 1})" if site else "no such layer"
            raise RealtimeRequestError(field, f"{n.label}: unit {n.unit} does not exist; that layer has {width}.")


def _word_rows(lm, words, sites, aggregation):
    """{site key: [n_words, units] float tensor} for one sentence."""
    import torch

    from analysis.engine.loading import capture
    from analysis.engine.subwords import word_activations

    encoding = _encode(lm, words)
    inputs = {k: v.to(lm.device) for k, v in encoding.items()}
    with torch.inference_mode(), capture(lm.model, sites) as captured:
        if lm.kind == "encoder-decoder":
            lm.model.get_encoder()(**inputs)
        else:
            lm.model(**inputs)
        word_ids = encoding.word_ids(0)
        return {s.key: word_activations(captured[s.key][0], word_ids, len(words), aggregation).float().cpu()
                for s in sites}


def compute_activations(arguments: dict) -> dict:
    """Per word, the top-k neurons by |activation| (within the pool when one is given) and, for the map, the
    values of those neurons (the pool, or the union of every word's top-k) at every word."""
    import torch

    from analysis.engine.neurons import NeuronId

    started = time.perf_counter()
    lm, cache_state = _loaded(arguments)
    words = arguments["words"]
    if arguments["pool"]:
        pool = [NeuronId.parse(label) for label in arguments["pool"]]
        _check_units(lm, pool, "pool")
        wanted = {(n.set, n.layer) for n in pool}
        sites = [s for ss in lm.neuron_sites().values() for s in ss if s.key in wanted]
        rows = _word_rows(lm, words, sites, arguments["aggregation"])
        neurons = pool
        matrix = torch.stack([rows[(n.set, n.layer)][:, n.unit] for n in pool], dim=1)
    else:
        sites = _sites_of_set(lm, arguments["neuron_set"])
        rows = _word_rows(lm, words, sites, arguments["aggregation"])
        neurons = [NeuronId(s.neuron_set, s.layer, u) for s in sites for u in range(s.units)]
        matrix = torch.cat([rows[s.key] for s in sites], dim=1)
    k = min(arguments["top_k"], matrix.shape[1])
    top = matrix.abs().topk(k, dim=1).indices
    shown = sorted(set(top.flatten().tolist())) if not arguments["pool"] else list(range(len(neurons)))
    return {
        "words": words,
        "neuron_set": arguments["neuron_set"] if not arguments["pool"] else None,
        "aggregation": arguments["aggregation"],
        "top": [[{"neuron": neurons[j].label, "value": round(float(matrix[i, j]), 6)} for j in top[i].tolist()]
                for i in range(len(words))],
        "neurons": [neurons[j].label for j in shown],
        "values": [[round(float(v), 6) for v in matrix[i, shown].tolist()] for i in range(len(words))],
        "cache": cache_state,
        "worker_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _sentence_embedding(lm, inputs, edits, mask):
    """Last hidden states [tokens, hidden] (with the edits when given) and the mean-pooled sentence vector."""
    import torch

    from analysis.engine.interventions import intervene

    def run():
        with torch.inference_mode():
            return lm.model(**inputs).last_hidden_state[0].float()

    if edits is None:
        return run()
    with intervene(lm.model, edits, positions=mask, sites=lm.neuron_sites()):
        return run()


def _embedding_comparison(lm, words, edits, chosen_words) -> dict:
    """For an encoder without a masked-LM head (a sentence-embedding model such as MiniLM): how far the edits
    move each word's last-layer vector and the mean-pooled sentence vector (cosine similarity)."""
    import torch

    from analysis.engine.interventions import positions_for_words
    from analysis.engine.subwords import word_activations

    encoding = _encode(lm, words)
    inputs = {k: v.to(lm.device) for k, v in encoding.items()}
    mask = positions_for_words(encoding, [chosen_words]) if chosen_words is not None else None
    before, after = _sentence_embedding(lm, inputs, None, mask), _sentence_embedding(lm, inputs, edits, mask)
    word_ids = encoding.word_ids(0)
    per_before = word_activations(before, word_ids, len(words), "mean")
    per_after = word_activations(after, word_ids, len(words), "mean")
    cos = torch.nn.functional.cosine_similarity
    sentence = float(cos(before.mean(0), after.mean(0), dim=0))
    per_word = cos(per_before, per_after, dim=1).tolist()
    return {"words": words, "sentence_similarity": round(sentence, 6),
            "word_similarity": [round(v, 6) for v in per_word], "identical": torch.equal(before, after)}


def compute_manipulation(arguments: dict) -> dict:
    """Original vs manipulated output: the engine's :func:`manipulate` (generation, translation, fill-mask), or
    for an encoder without a masked-LM head the change in its sentence embedding."""
    from analysis.engine.interventions import InterventionError, NeuronEdit
    from analysis.engine.manipulation import ManipulationError, _has_mlm_head, manipulate
    from analysis.engine.neurons import NeuronId

    started = time.perf_counter()
    lm, cache_state = _loaded(arguments)
    words = arguments["words"]
    neurons = [NeuronId.parse(e["neuron"]) for e in arguments["edits"]]
    _check_units(lm, neurons, "edits")
    edits = [NeuronEdit(n, e["operation"], e["value"]) for n, e in zip(neurons, arguments["edits"])]
    chosen = arguments["chosen_words"]
    try:
        if lm.kind == "encoder" and not _has_mlm_head(lm):
            answer = {"task": "embedding", "edits": [{"neuron": e.neuron.label, "operation": e.operation,
                                                      "value": e.value} for e in edits],
                      "positions": {"mode": "words", "words": [chosen]} if chosen is not None else {"mode": "all"},
                      "sentences": [_embedding_comparison(lm, words, edits, chosen)]}
        else:
            mask_words = arguments["mask_words"]
            answer = manipulate(lm, [words], edits, chosen_words=[chosen] if chosen is not None else None,
                                mask_words=[mask_words] if mask_words is not None else None,
                                max_new_tokens=arguments["max_new_tokens"], top_k=arguments["top_k"])
    except (ManipulationError, InterventionError) as error:
        message = str(error)
        raise RealtimeRequestError("sentence", message[:1].upper() + message[1:] + ".") from None
    return {**answer, "cache": cache_state, "worker_ms": round((time.perf_counter() - started) * 1000, 2)}


def answer_or_error(compute: Callable[[dict], dict], arguments: dict) -> dict:
    """What a realtime task returns: the answer, or ``{"error": {"field", "message"}}`` for a request the
    worker found it cannot answer (the web side turns that into a 400)."""
    configure_torch_threads(REALTIME_QUEUE)
    try:
        return compute(arguments)
    except RealtimeRequestError as error:
        return {"error": {"field": error.field, "message": error.message}}
