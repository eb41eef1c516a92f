"""The estimate the new-analysis form shows before a run is started: disk, memory and time, and which parts
are already computed.

The steps and their result keys come from ``services.plan_run`` (the same plan ``create_run`` stores), so a
part marked "reused" is exactly a step that would finish at once. Sizes come from the model's config (hidden
size, layers, MLP width, read from its ``config.json``) and the corpus's word count, through the activation
store's own size function (``engine.store.npy_bytes``). Time: the extraction's words per second on each device
(``settings.NEUROX_ESTIMATE_WORDS_PER_SECOND``, measured with all-MiniLM-L6-v2, see benchmarks/
bench_extract.py), scaled by the model's parameter count against MiniLM's.
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


@dataclass
class Estimate:
    parts: list[Part] = field(default_factory=list)
    disk_bytes: int = 0  # new activation stores (other results are small)
    memory_bytes: int = 0  # the largest single step's working set
    seconds: dict[str, float] = field(default_factory=dict)  # device → extraction seconds of the new stores
    words: int = 0

    @property
    def reused(self) -> int:
        return sum(part.state == "reused" for part in self.parts)


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


def estimate(project, request: dict) -> Estimate:
    """The estimate for ``request``; ``ValidationError`` (as ``create_run`` raises it) when it cannot run."""
    plan = services.plan_run(project, request)
    corpus = plan.corpus
    states = _states([step.key for step in plan.steps])
    result = Estimate(words=corpus.n_words)
    rates = settings.NEUROX_ESTIMATE_WORDS_PER_SECOND
    result.seconds = {device: 0.0 for device in rates}
    batch_tokens = settings.NEUROX_EXTRACT_BATCH_TOKENS
    for step in plan.steps:
        state = states[step.key]
        result.parts.append(Part(step.title, step.kind, state))
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
