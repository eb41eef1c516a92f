"""What the Manipulation page shows (its ``views.py``): which models, statistics and rankings
of the run it can use, the sliders (ranges and marks from each neuron's statistics), the presets, the recipe in
the page's query string, and the call to the realtime path. Read through the run's :class:`RunView`.

A *recipe* is what a manipulation is; its shape and its one check live with the model, in
:mod:`analysis.workspace.recipes`. The page keeps the same recipe in its query string (:func:`recipe_query` /
:func:`recipe_from_query`), so a shared URL, a saved recipe and an API client all go through ``clean_recipe``.
"""

from __future__ import annotations

import math

from django.http import QueryDict

from analysis.runs import realtime
from analysis.workspace.recipes import SLIDER_OPERATIONS, RecipeError, is_finite_number
from analysis.workspace.run_view import RunModel, RunView, ranking_over
from analysis.workspace.view_state import POOL_LIMIT

SCALE_RANGE = (-2.0, 4.0)
SLIDER_STEPS = 200
TOP_K_DEFAULT = 5
CORPUS_PAGE = 8


# ------------------------------------------------------------------------------------------------ the run's parts


def chosen_model(view: RunView, model_id) -> RunModel | None:
    """The usable model ``model_id``, else the run's first; None when the run has no usable model."""
    models = view.usable_models
    return view.usable_model(model_id) or (models[0] if models else None)


def top_neurons(model: RunModel, ranking_step, k: int, label: str = "") -> list[str]:
    """The ``k`` best neurons of a ranking of ``model`` (of its per-label sub-ranking ``label`` when given)."""
    ranking = ranking_over(ranking_step, model.store_key)
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
        "marks": [{"name": name, "value": v} for name, v in marks if is_finite_number(v)],
        "presets": [{"label": name, "value": mean} for name, mean in (facts or {}).get("label_means", {}).items()
                    if is_finite_number(mean)],
    }


def label_shift(stats, neurons: list[str], source: str, target: str, alpha: float) -> dict[str, float]:
    """The preset "move these neurons from label ``source`` towards ``target``, strength α": per neuron the
    shift α × (mean_target − mean_source). Neurons with no statistics, or no words of either label, get 0."""
    shifts = {}
    for label in neurons:
        facts = neuron_facts(stats, label)
        means = facts["label_means"] if facts else {}
        a, b = means.get(source), means.get(target)
        shifts[label] = alpha * (b - a) if is_finite_number(a) and is_finite_number(b) else 0.0
    return shifts


# ------------------------------------------------------------------------------------------------ the recipe


def chosen_words(recipe: dict, view: RunView | None = None) -> list[int] | None:
    """The word positions the edits of a clean recipe act at (None: every word)."""
    positions = recipe["positions"]
    if positions["mode"] == "words":
        return positions["words"]
    if positions["mode"] == "label":  # a clean recipe's label positions are over a corpus sentence of the run
        labels = sentence_labels(view.usable_model(recipe["model"]).store(), recipe["corpus_sentence"])
        chosen = [i for i, name in enumerate(labels) if name == positions["label"]]
        if not chosen:
            raise RecipeError("positions", f"No word of this sentence is labelled {positions['label']}; choose "
                              "another label or sentence.")
        return chosen
    return None


def realtime_request(recipe: dict, view: RunView | None = None) -> dict:
    """The body of ``POST …/realtime/manipulate/`` for a clean recipe."""
    words = chosen_words(recipe, view)
    body = {"model": recipe["model"], "sentence": recipe["sentence"], "edits": recipe["edits"],
            "mode": "all" if words is None else "words"}
    if words is not None:
        body["words"] = words
    if recipe["mask_words"]:
        body["mask_words"] = recipe["mask_words"]
    return body


def manipulate(view: RunView, recipe: dict) -> dict:
    """Original vs manipulated output of a clean recipe, from a realtime worker: the same validation and task
    as the realtime API (``RealtimeRequestError`` / ``RealtimeUnavailable`` / ``RealtimeTimeout`` pass up)."""
    arguments = realtime.validate_manipulation(view.run.project, realtime_request(recipe, view))
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
    checked (see ``analysis.workspace.recipes.clean_recipe``). Parameters: ``positions``, ``label``, ``word``, ``mask``,
    ``sentence``, ``corpus``."""
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


def page_state(view: RunView, query: QueryDict, pool: tuple[str, ...]) -> dict:
    """Everything the page and its output partial need, from the query string (see recipe_from_query)."""
    models = view.usable_models
    model = chosen_model(view, query.get("model"))
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
