"""The Manipulation view's logic: which models, statistics and rankings of a run it can use, the sliders (ranges
and marks from each neuron's statistics), the presets, the recipe (one JSON shape, one check, for the page, the
form that saves it and the API), and the call to the realtime path.

A *recipe* is what a manipulation is: ``{"model": id, "sentence": "...", "corpus_sentence": index | null,
"edits": [{"neuron": "L3:117", "operation": "clamp" | "scale" | "shift", "value": 1.5}],
"positions": {"mode": "all"} | {"mode": "label", "label": "VERB"} | {"mode": "words", "words": [0, 2]},
"mask_words": [...]}``. The page keeps the same recipe in its query string (:func:`recipe_query` /
:func:`recipe_from_query`), so a shared URL, a saved recipe and an API client all go through :func:`clean_recipe`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings
from django.http import QueryDict

from . import realtime
from .models import StepKind
from .workspace import POOL_LIMIT, ranking_of, store_of, statistics_of, succeeded_steps

SLIDER_OPERATIONS = ("clamp", "scale", "shift")
POSITION_MODES = ("all", "label", "words")
SCALE_RANGE = (-2.0, 4.0)
SLIDER_STEPS = 200
TOP_K_DEFAULT = 5
CORPUS_PAGE = 8
NAME_LIMIT = 120  # ManipulationRecipe.name's max_length


class RecipeError(ValueError):
    """The recipe cannot be used as sent; ``field`` names the part to change."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


# ------------------------------------------------------------------------------------------------ the run's parts


@dataclass
class RunModel:
    """One model of the run with what the view can use for it: its store, statistics and rankings."""

    upload: object  # projects.models.ModelUpload
    store_key: str
    statistics_step: object | None
    ranking_steps: list

    @property
    def pk(self) -> int:
        return self.upload.pk

    def store(self):
        return store_of(self.store_key)

    def statistics(self):
        return statistics_of(self.statistics_step) if self.statistics_step else None


def run_models(run) -> list[RunModel]:
    """The run's models that have a finished activation store, in the order the run lists them (worked out once
    per Run instance, i.e. once per request)."""
    if not hasattr(run, "_manipulation_models"):
        run._manipulation_models = _run_models(run)
    return run._manipulation_models


def _run_models(run) -> list[RunModel]:
    steps = succeeded_steps(run)
    uploads = {m.pk: m for m in run.project.model_uploads.all()}
    models = []
    for extract in (s for s in steps if s.kind == StepKind.EXTRACT):
        upload = uploads.get(extract.params.get("model"))
        if upload is None:  # detached from the project since the run
            continue
        key = extract.result_key
        stats = [s for s in steps if s.kind == StepKind.STATISTICS and s.params.get("store_key") == key]
        rankings = [s for s in steps if (s.kind == StepKind.RANKING and s.params.get("store_key") == key)
                    or (s.kind == StepKind.CROSSMODEL and key in s.params.get("store_keys", []))]
        models.append(RunModel(upload, key, stats[-1] if stats else None, rankings))
    return models


def model_of(models: list[RunModel], model_id) -> RunModel | None:
    """The chosen model (``model_id``), else the run's first; None when the run has no finished store."""
    for model in models:
        if str(model.pk) == str(model_id):
            return model
    return models[0] if models else None


def top_neurons(model: RunModel, ranking_step, k: int, label: str = "") -> list[str]:
    """The ``k`` best neurons of a ranking of ``model`` (of its per-label sub-ranking ``label`` when given)."""
    ranking = ranking_of(ranking_step)
    if isinstance(ranking, dict):  # cross-model: one ranking per model
        ranking = ranking[model.store_key]
    order = ranking.per_label.get(label) if label else None
    order = ranking.order if order is None else order
    return [ranking.neuron_ids[i].label for i in order[:k]]


def corpus_sentences(store, q: str = "", page: int = 1, per_page: int = CORPUS_PAGE) -> dict:
    """One page of the store's sentences containing ``q`` (case-insensitive): ``{"items": [(index, text)],
    "page", "has_next"}``. Only the word list (loaded once per process) is read, never activations."""
    offsets, words, needle = store.sentence_offsets, store.words, q.lower()
    start, items, skipped = (page - 1) * per_page, [], 0
    for index in range(store.n_sentences):
        text = " ".join(words[offsets[index]:offsets[index + 1]])
        if needle and needle not in text.lower():
            continue
        if skipped < start:
            skipped += 1
            continue
        if len(items) == per_page:
            return {"items": items, "page": page, "has_next": True}
        items.append((index, text))
    return {"items": items, "page": page, "has_next": False}


def sentence_labels(store, index: int) -> list[str]:
    """The store's label of each word of sentence ``index`` ("" for a word without one, stored as -1: read as an
    index it named the last label, and a preset "at words labelled X" then moved every word)."""
    offsets, names = store.sentence_offsets, store.label_names
    return [names[i] if i >= 0 else "" for i in store.labels[offsets[index]:offsets[index + 1]]]


# ------------------------------------------------------------------------------------------------ sliders


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def neuron_facts(stats, label: str) -> dict | None:
    """min / mean / max / quantiles / per-label means of one neuron, or None without statistics for it."""
    if stats is None:
        return None
    try:
        i = stats.position(label)
    except (KeyError, ValueError):
        return None
    a = stats.arrays  # read directly: NeuronStats.for_neuron also builds contexts and histograms, unused here
    return {"min": float(a["min"][i]), "mean": float(a["mean"][i]), "max": float(a["max"][i]),
            "std": float(a["std"][i]),
            "quantiles": {str(q): float(v) for q, v in zip(stats.params["quantiles"], a["quantiles"][i])},
            "label_means": {name: (None if math.isnan(v) else float(v))
                            for name, v in zip(stats.label_names, a["label_means"][i].tolist())}}


def slider(label: str, facts: dict | None, operation: str, value: float | None) -> dict:
    """What one neuron's slider draws: its range for ``operation``, its value and its marks.

    clamp: the neuron's own range [min, max], marks at min, 5 % / 95 % quantiles, mean, max and every label's mean;
    shift: ± (max − min), marks at each label's mean minus the overall mean ("as if this were a VERB" as a shift);
    scale: a factor from −2 to 4, marks at 0 (off) and 1 (unchanged). A value outside the range widens it."""
    marks = []
    if operation == "scale":
        low, high = SCALE_RANGE
        marks = [("off", 0.0), ("unchanged", 1.0)]
        default = 1.0
    elif facts is None:
        low, high, default = -5.0, 5.0, 0.0
    elif operation == "clamp":
        low, high, default = facts["min"], facts["max"], facts["mean"]
        q = facts["quantiles"]
        marks = [("min", low), ("5 %", q.get("0.05")), ("mean", facts["mean"]), ("95 %", q.get("0.95")),
                 ("max", high)]
        marks += [(f"{name} mean", mean) for name, mean in facts["label_means"].items()]
    else:  # shift
        span = facts["max"] - facts["min"]
        low, high, default = -span, span, 0.0
        marks = [("unchanged", 0.0)] + [(f"as {name}", mean - facts["mean"])
                                        for name, mean in facts["label_means"].items() if mean is not None]
    value = default if value is None else value
    low, high = min(low, value), max(high, value)
    if high <= low:
        high = low + 1.0
    return {
        "neuron": label, "operation": operation, "value": value, "low": low, "high": high,
        "step": (high - low) / SLIDER_STEPS, "facts": facts,
        "marks": [{"name": name, "value": v} for name, v in marks if _finite(v)],
        "presets": [{"label": name, "value": mean} for name, mean in (facts or {}).get("label_means", {}).items()
                    if _finite(mean)],
    }


def label_shift(stats, neurons: list[str], source: str, target: str, alpha: float) -> dict[str, float]:
    """The preset "move these neurons from label ``source`` towards ``target``, strength α": per neuron the
    shift α × (mean_target − mean_source). Neurons with no statistics, or no words of either label, get 0."""
    shifts = {}
    for label in neurons:
        facts = neuron_facts(stats, label)
        means = facts["label_means"] if facts else {}
        a, b = means.get(source), means.get(target)
        shifts[label] = alpha * (b - a) if _finite(a) and _finite(b) else 0.0
    return shifts


# ------------------------------------------------------------------------------------------------ the recipe


def clean_name(name) -> str:
    """A recipe's name, trimmed, or :class:`RecipeError`."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise RecipeError("name", "Give the recipe a name.")
    if len(name) > NAME_LIMIT:
        raise RecipeError("name", f"The name is longer than {NAME_LIMIT} characters; shorten it.")
    return name


def _int_list(value, field: str, length: int, what: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < length
                                              for i in value):
        raise RecipeError(field, f"{what} lists word positions from 0 to {length - 1}.")
    return sorted(set(value))


def clean_recipe(project, data, run=None) -> dict:
    """The recipe ``data`` checked against ``project`` (and ``run``, for a corpus sentence or label positions),
    in its one normal form; else :class:`RecipeError` with a message a person can act on."""
    from analysis.engine.neurons import NeuronId

    if not isinstance(data, dict):
        raise RecipeError("recipe", "A recipe is an object with model, sentence, edits and positions.")
    run_model = next((m for m in run_models(run) if str(m.pk) == str(data.get("model"))), None) if run else None
    try:  # a model of the run is one of the project's already (run_models reads the project's models)
        model = run_model.upload if run_model else project.model_uploads.get(pk=int(data.get("model")))
    except (TypeError, ValueError, project.model_uploads.model.DoesNotExist):
        raise RecipeError("model", "Choose one of this project's models (its id).") from None
    corpus_sentence = data.get("corpus_sentence")
    if corpus_sentence is not None:
        if run_model is None:
            raise RecipeError("corpus_sentence", "A corpus sentence needs a run with this model's activations; "
                              "type the sentence instead.")
        store = run_model.store()
        if isinstance(corpus_sentence, bool) or not isinstance(corpus_sentence, int) or not (
                0 <= corpus_sentence < store.n_sentences):
            raise RecipeError("corpus_sentence", f"corpus_sentence is a sentence number from 0 to "
                              f"{store.n_sentences - 1}.")
        words = store.sentence(corpus_sentence)
    else:
        sentence = data.get("sentence")
        words = sentence.split() if isinstance(sentence, str) else []
        if not words:
            raise RecipeError("sentence", "Type a sentence or pick one from the corpus: it is empty.")
    limit = settings.NEUROX_REALTIME_MAX_WORDS
    if len(words) > limit:
        raise RecipeError("sentence", f"The sentence has {len(words)} words; manipulation takes at most {limit}.")
    edits = data.get("edits")
    if not isinstance(edits, list) or not edits or len(edits) > POOL_LIMIT:
        raise RecipeError("edits", f"Choose 1 to {POOL_LIMIT} neurons to change (add them to the pool, or take "
                          "the top of a ranking).")
    clean_edits, seen = [], set()
    for edit in edits:
        if not isinstance(edit, dict):
            raise RecipeError("edits", "Each edit is an object with neuron, operation and value.")
        try:
            neuron = NeuronId.parse(str(edit.get("neuron"))).label
        except ValueError:
            raise RecipeError("edits", f"{edit.get('neuron')!r} is not a neuron: write e.g. 'L3:117' or "
                              "'mlp.L2:5'.") from None
        if neuron in seen:
            raise RecipeError("edits", f"{neuron} is listed twice; give each neuron one edit.")
        seen.add(neuron)
        operation, value = edit.get("operation"), edit.get("value")
        if operation not in SLIDER_OPERATIONS:
            raise RecipeError("edits", f"{neuron}: the operation must be one of {', '.join(SLIDER_OPERATIONS)}.")
        if not _finite(value):
            raise RecipeError("edits", f"{neuron}: the value must be a finite number.")
        clean_edits.append({"neuron": neuron, "operation": operation, "value": float(value)})
    positions = data.get("positions") or {"mode": "all"}
    mode = positions.get("mode") if isinstance(positions, dict) else None
    if mode not in POSITION_MODES:
        raise RecipeError("positions", "positions.mode is 'all' (every word), 'label' (the words with a label) "
                          "or 'words' (chosen word positions).")
    if mode == "label":
        if corpus_sentence is None:
            raise RecipeError("positions", "Words by label need a corpus sentence (typed text has no labels); "
                              "choose word positions instead.")
        names = run_model.store().label_names
        if positions.get("label") not in names:
            raise RecipeError("positions", f"Choose a label of this corpus: {', '.join(names)}.")
        positions = {"mode": "label", "label": positions["label"]}
    elif mode == "words":
        chosen = _int_list(positions.get("words"), "positions", len(words), "positions.words")
        if not chosen:
            raise RecipeError("positions", "Tick at least one word to change, or change every word.")
        positions = {"mode": "words", "words": chosen}
    else:
        positions = {"mode": "all"}
    mask_words = data.get("mask_words") or []
    mask_words = _int_list(mask_words, "mask_words", len(words), "mask_words") if mask_words else []
    return {"model": model.pk, "sentence": " ".join(words), "corpus_sentence": corpus_sentence,
            "edits": clean_edits, "positions": positions, "mask_words": mask_words}


def chosen_words(recipe: dict, run=None) -> list[int] | None:
    """The word positions the edits act at (None: every word)."""
    positions = recipe["positions"]
    if positions["mode"] == "words":
        return positions["words"]
    if positions["mode"] == "label":
        run_model = model_of(run_models(run), recipe["model"])
        labels = sentence_labels(run_model.store(), recipe["corpus_sentence"])
        chosen = [i for i, name in enumerate(labels) if name == positions["label"]]
        if not chosen:
            raise RecipeError("positions", f"No word of this sentence is labelled {positions['label']}; choose "
                              "another label or sentence.")
        return chosen
    return None


def realtime_request(recipe: dict, run=None) -> dict:
    """The body of ``POST …/realtime/manipulate/`` for a clean recipe."""
    words = chosen_words(recipe, run)
    body = {"model": recipe["model"], "sentence": recipe["sentence"], "edits": recipe["edits"],
            "mode": "all" if words is None else "words"}
    if words is not None:
        body["words"] = words
    if recipe["mask_words"]:
        body["mask_words"] = recipe["mask_words"]
    return body


def manipulate(project, recipe: dict, run=None) -> dict:
    """Original vs manipulated output of a clean recipe, from a realtime worker: the same validation and task
    as the realtime API (``RealtimeRequestError`` / ``RealtimeUnavailable`` / ``RealtimeTimeout`` pass up)."""
    arguments = realtime.validate_manipulation(project, realtime_request(recipe, run))
    return realtime.ask(realtime.MANIPULATE_TASK, arguments)


def side_by_side(answer: dict) -> dict:
    """The realtime answer shaped for the template: tokens paired with their changed flag."""
    entry = answer["sentences"][0]
    shown = {"task": answer["task"], "identical": entry.get("identical", False), "words": entry["words"]}
    if answer["task"] in ("generation", "translation"):
        for side in ("original", "manipulated"):
            shown[side] = {"text": entry[side]["text"],
                           "tokens": list(zip(entry[side]["tokens"], entry[side]["changed"]))}
        shown["changed_count"] = sum(entry["manipulated"]["changed"])
    elif answer["task"] == "fill-mask":
        shown["masks"] = [{"word": m["word"], "top1_changed": m["top1_changed"], "original": m["original"],
                           "manipulated": [{**p, "changed": c} for p, c in zip(m["manipulated"], m["changed"])]}
                          for m in entry["masks"]]
    else:  # embedding: how far each word's vector moved
        shown["sentence_similarity"] = entry["sentence_similarity"]
        shown["word_rows"] = [{"word": w, "similarity": s, "changed": s < 0.9999}
                              for w, s in zip(entry["words"], entry["word_similarity"])]
    return shown


# ------------------------------------------------------------------------------------------------ the query string


def _float(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _ints(query: QueryDict, name: str) -> list[int]:
    out = []
    for item in query.getlist(name):
        for part in str(item).split(","):
            if part.strip().lstrip("-").isdigit():
                out.append(int(part))
    return out


def requested_edits(query: QueryDict, neurons: list[str]) -> list[tuple[str, str, float | None]]:
    """(neuron, operation, value or None) per neuron from ``op.<label>`` / ``v.<label>`` (clamp by default)."""
    out = []
    for label in neurons:
        operation = query.get(f"op.{label}", "clamp")
        out.append((label, operation if operation in SLIDER_OPERATIONS else "clamp",
                    _float(query.get(f"v.{label}"))))
    return out


def recipe_from_query(query: QueryDict, sliders: list[dict], model_id) -> dict:
    """The recipe the page's form (or a shared URL) describes, with each neuron's value from its slider; not yet
    checked (see :func:`clean_recipe`). Parameters: ``positions``, ``label``, ``word``, ``mask``, ``sentence``,
    ``corpus``."""
    corpus = query.get("corpus", "")
    mode = query.get("positions", "all")
    positions = {"mode": mode}
    if mode == "label":
        positions["label"] = query.get("label", "")
    elif mode == "words":
        positions["words"] = _ints(query, "word")
    return {"model": model_id, "sentence": query.get("sentence", ""),
            "corpus_sentence": int(corpus) if corpus.isdigit() else None,
            "edits": [{"neuron": s["neuron"], "operation": s["operation"], "value": s["value"]} for s in sliders],
            "positions": positions, "mask_words": _ints(query, "mask")}


def recipe_query(recipe: dict) -> dict:
    """The query-string parameters that restore ``recipe`` on the page (the inverse of recipe_from_query)."""
    params = {"model": recipe["model"], "pools": ",".join(e["neuron"] for e in recipe["edits"]),
              "positions": recipe["positions"]["mode"]}
    if recipe.get("corpus_sentence") is not None:
        params["corpus"] = recipe["corpus_sentence"]
    else:
        params["sentence"] = recipe["sentence"]
    for edit in recipe["edits"]:
        params[f"op.{edit['neuron']}"] = edit["operation"]
        params[f"v.{edit['neuron']}"] = edit["value"]
    if recipe["positions"]["mode"] == "label":
        params["label"] = recipe["positions"]["label"]
    if recipe["positions"]["mode"] == "words":
        params["word"] = ",".join(map(str, recipe["positions"]["words"]))
    if recipe.get("mask_words"):
        params["mask"] = ",".join(map(str, recipe["mask_words"]))
    return params


# ------------------------------------------------------------------------------------------------ the page


def effective_query(query: QueryDict, recipe_row=None) -> QueryDict:
    """The page's parameters: the request's, or (``recipe=<id>``) the saved recipe's, keeping the view state."""
    if recipe_row is None:
        return query
    restored = QueryDict(mutable=True)
    for key in ("ranking", "recipe"):
        if key in query:
            restored[key] = query[key]
    for key, value in recipe_query(recipe_row.recipe).items():
        restored[key] = str(value)
    return restored


def _apply_preset(query: QueryDict, stats, neurons: list[str], corpus_sentence) -> tuple[QueryDict, dict | None]:
    """``preset_from`` / ``preset_to`` / ``alpha``: every neuron shifted by α × (mean_to − mean_from), at the
    words labelled ``preset_from`` of a corpus sentence (typed text keeps its chosen positions)."""
    source, target, alpha = query.get("preset_from"), query.get("preset_to"), _float(query.get("alpha"))
    if not (source and target and alpha is not None and stats is not None):
        return query, None
    if source not in stats.label_names or target not in stats.label_names:
        return query, {"error": f"Choose two labels of this corpus ({', '.join(stats.label_names)})."}
    query = query.copy()
    for label, shift in label_shift(stats, neurons, source, target, alpha).items():
        query[f"op.{label}"], query[f"v.{label}"] = "shift", repr(shift)
    if corpus_sentence is not None:
        query["positions"], query["label"] = "label", source
    return query, {"from": source, "to": target, "alpha": alpha}


def page_state(run, query: QueryDict, pool: tuple[str, ...]) -> dict:
    """Everything the page and its output partial need, from the query string (see recipe_from_query)."""
    models = run_models(run)
    model = model_of(models, query.get("model"))
    if model is None:
        return {"models": [], "model": None, "neurons": [], "sliders": []}
    stats, store = model.statistics(), model.store()
    neurons, ranking_step = list(pool), None
    k = max(1, min(POOL_LIMIT, int(query["k"]) if query.get("k", "").isdigit() else TOP_K_DEFAULT))
    ranking_id = query.get("ranking", "")
    ranking_step = next((s for s in model.ranking_steps if str(s.pk) == ranking_id), None)
    if not neurons and ranking_step is not None:
        neurons = top_neurons(model, ranking_step, k, query.get("rlabel", ""))
    corpus = query.get("corpus", "")
    corpus_sentence = int(corpus) if corpus.isdigit() and int(corpus) < store.n_sentences else None
    typed = " ".join(query.get("sentence", "").split())
    if corpus_sentence is not None and typed and typed != " ".join(store.sentence(corpus_sentence)):
        corpus_sentence = None  # the person edited the corpus sentence: it is typed text now
    query = query.copy()
    query["corpus"] = "" if corpus_sentence is None else str(corpus_sentence)
    query, preset = _apply_preset(query, stats, neurons, corpus_sentence)
    sliders = [slider(label, neuron_facts(stats, label), operation, value)
               for label, operation, value in requested_edits(query, neurons)]
    recipe = recipe_from_query(query, sliders, model.pk)
    words = store.sentence(corpus_sentence) if corpus_sentence is not None else typed.split()
    labels = sentence_labels(store, corpus_sentence) if corpus_sentence is not None else []
    return {
        "models": models, "model": model, "stats": stats, "neurons": neurons, "sliders": sliders,
        "ranking_step": ranking_step, "k": k, "rlabel": query.get("rlabel", ""), "preset": preset,
        "label_names": store.label_names, "recipe": recipe, "corpus_sentence": corpus_sentence,
        "sentence": " ".join(words),
        "words": [{"index": i, "word": w, "label": labels[i] if labels else "",
                   "chosen": i in recipe["positions"].get("words", []), "masked": i in recipe["mask_words"]}
                  for i, w in enumerate(words)],
        "is_encoder": model.upload.model_kind == "encoder",
    }
