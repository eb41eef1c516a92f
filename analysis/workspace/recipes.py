"""The rule of a ManipulationRecipe (``analysis.models``): its one JSON shape and its one check, for the
Manipulation page, the form that saves a recipe, the API, and its writes (:func:`create_recipe`, :func:`delete_recipe`).

A recipe is ``{"model": id, "sentence": "...", "corpus_sentence": index | null, "edits": [{"neuron": "L3:117",
"operation": "clamp" | "scale" | "shift", "value": 1.5}], "positions": {"mode": "all"} | {"mode": "label",
"label": "VERB"} | {"mode": "words", "words": [0, 2]}, "mask_words": [...]}``. :func:`clean_recipe` turns one into
its normal form or raises :class:`RecipeError` with a message a person can act on.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.core.exceptions import PermissionDenied

from analysis.models import ManipulationRecipe
from analysis.workspace import POOL_LIMIT, RunView
from projects.selectors import can_write

SLIDER_OPERATIONS = ("clamp", "scale", "shift")
POSITION_MODES = ("all", "label", "words")  # where the edits act: every word, the words with a label, chosen words
NAME_LIMIT = 120  # ManipulationRecipe.name's max_length


class RecipeError(ValueError):
    """The recipe cannot be used as sent; ``field`` names the part to change."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def clean_name(name) -> str:
    """A recipe's name, trimmed, or :class:`RecipeError`."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise RecipeError("name", "Give the recipe a name.")
    if len(name) > NAME_LIMIT:
        raise RecipeError("name", f"The name is longer than {NAME_LIMIT} characters; shorten it.")
    return name


def clean_recipe(project, data, run=None) -> dict:
    """The recipe ``data`` checked against ``project`` (and ``run``, for a corpus sentence or label positions),
    in its one normal form; else :class:`RecipeError`."""
    if not isinstance(data, dict):
        raise RecipeError("recipe", "A recipe is an object with model, sentence, edits and positions.")
    run_model = RunView.of(run).usable_model(data.get("model")) if run else None
    model = _model(project, data.get("model"), run_model)
    corpus_sentence = data.get("corpus_sentence")
    words = _words(data, run_model)
    return {"model": model.pk, "sentence": " ".join(words), "corpus_sentence": corpus_sentence,
            "edits": _edits(data.get("edits")),
            "positions": _positions(data.get("positions"), words, run_model, corpus_sentence),
            "mask_words": _word_positions(data.get("mask_words") or [], "mask_words", len(words), "mask_words")}


def _model(project, model_id, run_model):
    """The recipe's model: a model of the run (one of the project's already), else one of the project's."""
    if run_model is not None:
        return run_model.upload
    try:
        return project.model_uploads.get(pk=int(model_id))
    except (TypeError, ValueError, project.model_uploads.model.DoesNotExist):
        raise RecipeError("model", "Choose one of this project's models (its id).") from None


def _words(data: dict, run_model) -> list[str]:
    """The recipe's sentence as words: the run's corpus sentence ``corpus_sentence``, else the typed text."""
    corpus_sentence = data.get("corpus_sentence")
    if corpus_sentence is not None:
        words = _corpus_sentence(run_model, corpus_sentence)
    else:
        sentence = data.get("sentence")
        words = sentence.split() if isinstance(sentence, str) else []
        if not words:
            raise RecipeError("sentence", "Type a sentence or pick one from the corpus: it is empty.")
    limit = settings.NEUROX_REALTIME_MAX_WORDS
    if len(words) > limit:
        raise RecipeError("sentence", f"The sentence has {len(words)} words; manipulation takes at most {limit}.")
    return words


def _corpus_sentence(run_model, index) -> list[str]:
    if run_model is None:
        raise RecipeError("corpus_sentence", "A corpus sentence needs a run with this model's activations; "
                          "type the sentence instead.")
    store = run_model.store()
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < store.n_sentences:
        raise RecipeError("corpus_sentence", f"corpus_sentence is a sentence number from 0 to "
                          f"{store.n_sentences - 1}.")
    return store.sentence(index)


def _edits(edits) -> list[dict]:
    if not isinstance(edits, list) or not edits or len(edits) > POOL_LIMIT:
        raise RecipeError("edits", f"Choose 1 to {POOL_LIMIT} neurons to change (add them to the pool, or take "
                          "the top of a ranking).")
    seen: set[str] = set()
    return [_edit(edit, seen) for edit in edits]


def _edit(edit, seen: set[str]) -> dict:
    """One edit in its normal form; ``seen``: the neurons of the edits before it (each neuron has one edit)."""
    from analysis.engine.neurons import NeuronId

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
    if not is_finite_number(value):
        raise RecipeError("edits", f"{neuron}: the value must be a finite number.")
    return {"neuron": neuron, "operation": operation, "value": float(value)}


def _positions(positions, words: list[str], run_model, corpus_sentence) -> dict:
    positions = positions or {"mode": "all"}
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
        return {"mode": "label", "label": positions["label"]}
    if mode == "words":
        chosen = _word_positions(positions.get("words"), "positions", len(words), "positions.words")
        if not chosen:
            raise RecipeError("positions", "Tick at least one word to change, or change every word.")
        return {"mode": "words", "words": chosen}
    return {"mode": "all"}


def _word_positions(value, field: str, length: int, what: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < length
                                              for i in value):
        raise RecipeError(field, f"{what} lists word positions from 0 to {length - 1}.")
    return sorted(set(value))


# ------------------------------------------------------------------------------------------------ the writes
# For the Manipulation page and the API alike.

def create_recipe(user, project, *, name, recipe, run=None):
    """Save a manipulation recipe of ``project`` (owners and editors), made with ``run`` (or none), after the
    recipe's one check. ``PermissionDenied`` for a viewer; ``RecipeError`` (nothing stored) says what to change."""
    if not can_write(user, project):
        raise PermissionDenied("Viewers cannot save recipes; ask an owner for the editor role.")
    if run is not None and run.project_id != project.pk:
        raise RecipeError("run", "Not a run of this project.")
    return ManipulationRecipe.objects.create(project=project, run=run, created_by=user, name=clean_name(name),
                                             recipe=clean_recipe(project, recipe, run))


def delete_recipe(user, recipe) -> None:
    """Delete a saved manipulation recipe (owners and editors of its project); ``PermissionDenied`` for a viewer."""
    if not can_write(user, recipe.project):
        raise PermissionDenied("Viewers cannot delete recipes; ask an owner for the editor role.")
    recipe.delete()
