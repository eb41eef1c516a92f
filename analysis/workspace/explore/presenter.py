"""What the Analysis page shows (its ``views.py``): which ranking is shown, its neurons (filtered and
paged), confidence, the comparison of methods, the pool, the activation map of the corpus and of a typed sentence.

Everything a request needs is read through the run's :class:`RunView` and the per-process caches of
:mod:`analysis.workspace.run_view` (results never change once ready): a ranking's JSON is parsed once, and so
are the arrays that filter its neurons
(:class:`RankingIndex`); a store's word index for search is built once (:func:`sentence_search_index`); the
activation map reads only the rows of the sentences it shows from the memory-mapped store.

**Colour scale of the activation map** (documented here, shown in the legend): diverging, symmetric about 0,
purple for negative, white at 0, orange for positive (the colour-blind-safe PuOr scheme). Each neuron has its
own bound: the largest magnitude of its 1st and 99th percentile over the corpus (from the run's statistics),
so a neuron's colours mean the same on every page and a few outliers do not wash the rest out; values beyond
the bound take the end colour. Without statistics (or for a constant neuron) the bound is the largest magnitude
among the values shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from html import escape

import numpy as np
from django.http import Http404
from django.utils.safestring import mark_safe

from analysis.runs import realtime
from analysis.models import Step
from analysis.workspace.run_view import RunView, is_crossmodel, loaded, ranking_over, store_of, stores_of
from analysis.workspace.view_state import POOL_LIMIT, ViewState

TOP_SHOWN = 10  # neurons listed in the ranking panel
NEURONS_PER_PAGE = 20  # rows of the neuron list
MAP_SENTENCES = 4  # sentences per page of the activation map …
MAP_ROWS = 100  # … fewer with a large pool, so that a page holds at most this many neuron rows (or one sentence)
K_CHOICES = ("1%", "10", "50")  # top-k of the comparison of methods
TYPED_TOP = 3  # neurons shown per word of a typed sentence
TYPED_CANDIDATES = 300  # best-ranked neurons searched on a typed sentence (with the pool)


class ExploreError(Exception):
    """Input the view cannot show as asked; ``message`` says what to change."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


# ------------------------------------------------------------------------------------------------ rankings


@dataclass(frozen=True)
class RankingOption:
    """One ranking of the run: a ranking step, or one model's ranking of a cross-model step (``of``)."""

    step: Step
    store_key: str
    of: int | None
    name: str

    def query(self, state: ViewState) -> str:
        return state.query(ranking=self.step.pk, of=self.of, sub="", label="", npage="", set="", layer="")


def ranking_options(view: RunView) -> list[RankingOption]:
    """Every finished ranking of the run (a cross-model one: one per model); model names only where the run has
    several models."""
    names = {m.store_key: m.name for m in view.models} if len(view.models) > 1 else {}
    options = []
    for step in view.rankings:
        p, keys = step.params, stores_of(step)
        method = p.get("method", step.kind)
        if is_crossmodel(step):
            options += [RankingOption(step, key, i, f"cross-model {method} · {names.get(key, key[:8])}")
                        for i, key in enumerate(keys)]
            continue
        name = method + (f" · {p['bootstrap']} resamples" if p.get("bootstrap") else "")
        name += f" · consensus {p['consensus']}" if p.get("consensus") else ""
        name += f" · {names[keys[0]]}" if keys[0] in names else ""
        options.append(RankingOption(step, keys[0], None, name))
    return options


def chosen_option(options: list[RankingOption], state: ViewState) -> RankingOption:
    """The ranking the URL asks for (the first one by default)."""
    if state.ranking is None:
        return options[0]
    raw = str(state.extra.get("of", ""))
    of = int(raw) if raw.isdigit() else None
    for option in options:
        if option.step.pk == state.ranking and (option.of == of or (of is None and option.of in (None, 0))):
            return option
    raise ExploreError(f"Ranking {state.ranking} is not a finished ranking of this run; choose one of the rankings "
                       "listed.", status=404)


def ranking_for(option: RankingOption):
    try:
        return ranking_over(option.step, option.store_key)
    except Http404:
        raise ExploreError("This ranking's result is not available any more; retry the run.", status=200) from None


@dataclass
class Chosen:
    """One request's view of the run: its rankings and the chosen one."""

    view: RunView
    options: list[RankingOption]
    option: RankingOption
    ranking: object
    index: "RankingIndex"

    @property
    def store_key(self) -> str:
        return self.option.store_key

    @property
    def model(self):
        return self.view.model(self.store_key)

    def statistics(self):
        """The NeuronStats of the run over this store, or None when there is none (or it is not ready)."""
        if not hasattr(self, "_stats"):
            try:
                self._stats = self.model.statistics() if self.model else None
            except Http404:
                self._stats = None
        return self._stats


def choose(view: RunView, options: list[RankingOption], state: ViewState) -> Chosen | None:
    """The ranking the URL asks for among ``options``; None when the run has no ranking yet."""
    if not options:
        return None
    option = chosen_option(options, state)
    ranking = ranking_for(option)
    return Chosen(view, options, option, ranking, index_of(option, ranking))


@dataclass
class RankingIndex:
    """What filtering and paging a ranking's neurons needs, as arrays (built once per ranking per process)."""

    sets: list[str]  # neuron-set names, in first-seen order
    set_code: np.ndarray  # [N] index into sets
    layer: np.ndarray  # [N]
    rank: np.ndarray  # [N] rank (0 = best) in the ranking's order
    positions: dict[str, int]  # neuron label → position
    layers_of: dict[str, list[int]]
    label_rank: dict[str, np.ndarray] = field(default_factory=dict)  # label → [N] rank in its sub-ranking
    neurons_key: int = 0  # equal for rankings over the same neurons in the same order


def index_of(option: RankingOption, ranking) -> RankingIndex:
    def build() -> RankingIndex:
        sets = list(dict.fromkeys(n.set for n in ranking.neuron_ids))
        code = {name: i for i, name in enumerate(sets)}
        set_code = np.fromiter((code[n.set] for n in ranking.neuron_ids), np.int16, len(ranking.neuron_ids))
        layer = np.fromiter((n.layer for n in ranking.neuron_ids), np.int32, len(ranking.neuron_ids))
        label_rank = {}
        for label, order in ranking.per_label.items():
            ranks = np.full(len(ranking.neuron_ids), -1, np.int64)
            ranks[order] = np.arange(len(order))
            label_rank[label] = ranks
        return RankingIndex(sets, set_code, layer, ranking.rank_of(), {n.label: i for i, n in
                                                                       enumerate(ranking.neuron_ids)},
                            {s: sorted(set(layer[set_code == i].tolist())) for s, i in code.items()}, label_rank,
                            hash(tuple(ranking.neuron_ids)))

    return loaded.get(f"explore-index:{option.step.result_key}:{option.store_key}", build)


def neuron_row(ranking, index: RankingIndex, position: int, label: str | None = None) -> dict:
    neuron = ranking.neuron_ids[position]
    score = ranking.scores[position]
    row = {"label": neuron.label, "set": neuron.set, "layer": neuron.layer, "unit": neuron.unit,
           "rank": int(index.rank[position]) + 1, "score": None if not np.isfinite(score) else float(score)}
    if label:
        row["label_rank"] = int(index.label_rank[label][position]) + 1
    confidence = ranking.confidence or {}
    if "rank_low" in confidence:
        row["interval"] = (confidence["rank_low"][position] + 1, confidence["rank_high"][position] + 1)
    return row


def per_label_choice(ranking, label: str) -> str:
    if not label:
        return ""
    if label not in ranking.per_label:
        known = ", ".join(sorted(ranking.per_label)) or "none"
        raise ExploreError(f"This ranking has no sub-ranking for the label “{label}” (it has: {known}).")
    return label


def ranking_panel(chosen: Chosen, state: ViewState) -> dict:
    """The chosen ranking's top neurons (overall or for one label), its confidence and the method comparison."""
    ranking, index = chosen.ranking, chosen.index
    label = per_label_choice(ranking, state.extra.get("sub", ""))  # the panel's label; the list has its own
    order = ranking.per_label[label] if label else ranking.order
    confidence = ranking.confidence or None
    stability = []
    if confidence:
        stability = [{"k": key, "size": confidence["k"][key], "jaccard": value}
                     for key, value in confidence.get("stability", {}).items()]
    return {"ranking": ranking, "label": label, "labels": sorted(ranking.per_label),
            "top": [neuron_row(ranking, index, int(p), label) for p in order[:TOP_SHOWN]],
            "confidence": confidence, "stability": stability,
            "consensus": (confidence or {}).get("consensus"),
            "comparison": comparison(chosen, state.extra.get("k", "10"))}


def comparison(chosen: Chosen, k: str) -> dict:
    """Top-k overlap (Jaccard) between every ranking of the same model and neurons, with the engine's
    ``method_agreement``; cached per (rankings, k)."""
    from analysis.engine.confidence import method_agreement

    if k not in K_CHOICES:
        raise ExploreError(f"k must be one of {', '.join(K_CHOICES)}.")
    peers = []
    for other in chosen.options:
        if other.store_key != chosen.store_key:
            continue
        try:
            candidate = ranking_for(other)
        except ExploreError:
            continue
        if other == chosen.option or index_of(other, candidate).neurons_key == chosen.index.neurons_key:
            peers.append((other, candidate))
    if len(peers) < 2:
        return {"k": k, "choices": K_CHOICES, "names": [], "cells": []}
    keys = ",".join(f"{o.step.result_key}:{o.of}" for o, _ in peers)

    def compute():
        agreement = method_agreement([r for _, r in peers], k=int(k) if k.isdigit() else k)
        return agreement["k"], agreement["jaccard"]

    size, jaccard = loaded.get(f"explore-agree:{keys}:{k}", compute)
    names = [o.name for o, _ in peers]
    cells = [[{"value": value, "shade": shade(value), "self": i == j} for j, value in enumerate(row)]
             for i, row in enumerate(jaccard)]
    return {"k": k, "size": size, "choices": K_CHOICES, "names": names, "rows": list(zip(names, cells))}


def shade(value: float) -> dict:
    """A light-to-dark blue background for a 0–1 value, and a text colour that keeps 4.5:1 contrast."""
    v = min(max(float(value), 0.0), 1.0)
    low, high = np.array([247, 251, 255]), np.array([8, 69, 148])
    rgb = low + (high - low) * v
    return {"bg": "#%02x%02x%02x" % tuple(int(round(c)) for c in rgb), "fg": text_colour(rgb)}


# ------------------------------------------------------------------------------------------------ neuron list


def _int_param(state, name: str, what: str) -> int | None:
    raw = state.extra.get(name, "")
    if raw in ("", None):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ExploreError(f"{what} must be a whole number, not “{raw}”.") from None
    if value < 0:
        raise ExploreError(f"{what} must be 0 or more.")
    return value


def _page_within(page: int, total: int, per_page: int) -> tuple[int, int, str]:
    """(page, pages, note): the page asked for, or the last one with a note saying so."""
    pages = max(1, -(-total // per_page))
    if page > pages:
        return pages, pages, f"Page {page} is past the last page ({pages}); showing page {pages}."
    return page, pages, ""


def _filtered_order(chosen: Chosen, label: str, neuron_set: str, layer: int | None) -> np.ndarray:
    """The ranking's order (or its sub-ranking for ``label``), keeping the neurons of ``neuron_set`` and
    ``layer`` when given (a set of the ranking)."""
    ranking, index = chosen.ranking, chosen.index
    order = ranking.per_label[label] if label else ranking.order
    keep = np.ones(len(order), bool)
    if neuron_set:
        keep &= index.set_code[order] == index.sets.index(neuron_set)
    if layer is not None:
        known = sorted({l for s in ([neuron_set] if neuron_set else index.sets) for l in index.layers_of[s]})
        if layer not in known:
            raise ExploreError(f"There is no layer {layer} here (layers {known[0]}–{known[-1]}).")
        keep &= index.layer[order] == layer
    return order[keep] if not keep.all() else order


def neuron_list(chosen: Chosen, state: ViewState) -> dict:
    """One page of the ranking's neurons, filtered by set / layer / label (best first)."""
    ranking, index = chosen.ranking, chosen.index
    label = per_label_choice(ranking, state.extra.get("label", ""))
    neuron_set = state.extra.get("set", "")
    if neuron_set and neuron_set not in index.sets:
        raise ExploreError(f"This ranking has no neuron set “{neuron_set}” (it has: {', '.join(index.sets)}).")
    layer = _int_param(state, "layer", "The layer")
    chosen = _filtered_order(chosen, label, neuron_set, layer)
    page, pages, note = _page_within(_int_param(state, "npage", "The page") or 1, len(chosen), NEURONS_PER_PAGE)
    start = (page - 1) * NEURONS_PER_PAGE
    pool = set(state.pool)
    rows = [dict(neuron_row(ranking, index, int(p), label)) for p in chosen[start:start + NEURONS_PER_PAGE]]
    for row in rows:
        row["pooled"] = row["label"] in pool
        row["toggle"] = removed(state, row["label"]) if row["pooled"] else added(state, row["label"])
    return {"rows": rows, "page": page, "pages": pages, "total": len(chosen), "note": note,
            "filters": {"set": neuron_set, "layer": "" if layer is None else layer, "label": label},
            "sets": index.sets, "layers": sorted({l for ls in index.layers_of.values() for l in ls}),
            "labels": sorted(ranking.per_label), "has_interval": bool(ranking.confidence),
            "prev": state.query(npage=page - 1) if page > 1 else None,
            "next": state.query(npage=page + 1) if page < pages else None,
            "pool_full": len(state.pool) >= POOL_LIMIT}


# ------------------------------------------------------------------------------------------------ pool


def pool_of(chosen: Chosen, state: ViewState) -> tuple[list, list[str]]:
    """The pool's neurons that this ranking knows (NeuronIds, in pool order) and the labels it does not."""
    ranking, index = chosen.ranking, chosen.index
    known, unknown = [], []
    for label in state.pool:
        position = index.positions.get(label)
        if position is None:
            try:
                from analysis.engine.neurons import NeuronId

                position = index.positions.get(NeuronId.parse(label).label)
            except ValueError:
                position = None
        if position is None:
            unknown.append(label)
        else:
            known.append(ranking.neuron_ids[position])
    return known, unknown


def pool_changes(state: ViewState, neurons) -> dict:
    """For each pooled neuron, the query string that removes it; and the one that empties the pool."""
    return {"remove": [(n, removed(state, n.label)) for n in neurons],
            "clear": state.query(pool=())}


def added(state: ViewState, label: str) -> str:
    return state.query(pool=state.pool + (label,))


def removed(state: ViewState, label: str) -> str:
    return state.query(pool=tuple(p for p in state.pool if p != label))


# ------------------------------------------------------------------------------------------------ statistics


def scales_for(stats, neurons, values: np.ndarray) -> list[float]:
    """Each neuron's colour bound (see the module docstring)."""
    bounds = []
    q = list(stats.params["quantiles"]) if stats is not None else []
    low_q, high_q = (q.index(0.01), q.index(0.99)) if 0.01 in q and 0.99 in q else (None, None)
    for j, neuron in enumerate(neurons):
        bound = 0.0
        if stats is not None and low_q is not None:
            try:
                i = stats.position(neuron)
                quantiles = stats.arrays["quantiles"][i]
                bound = float(max(abs(quantiles[low_q]), abs(quantiles[high_q])))
            except KeyError:
                bound = 0.0
        if not bound > 0:
            column = np.abs(values[:, j]) if values.size else np.zeros(1)
            bound = float(column.max()) if column.size and np.isfinite(column).all() else 0.0
        bounds.append(bound if bound > 0 else 1.0)
    return bounds


# ------------------------------------------------------------------------------------------------ colour and rows


# PuOr (ColorBrewer, colour-blind safe): purple for negative, white at 0, orange for positive
_NEGATIVE = np.array([[247, 247, 247], [216, 218, 235], [178, 171, 210], [128, 115, 172], [84, 39, 136]], float)
_POSITIVE = np.array([[247, 247, 247], [254, 224, 182], [253, 184, 99], [224, 130, 20], [179, 88, 6]], float)


def _relative_luminance(rgb) -> float:
    channel = np.asarray(rgb, float) / 255
    linear = np.where(channel <= 0.04045, channel / 12.92, ((channel + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2])


def text_colour(rgb) -> str:
    """Black or white, whichever contrasts more with ``rgb``."""
    luminance = _relative_luminance(rgb)
    return "#000000" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "#ffffff"


@lru_cache(maxsize=512)
def _colour_at(step: int) -> tuple[str, str]:
    """Background and text colour of a value quantised to ``step`` in −100..100 (of the bound)."""
    t = abs(step) / 100
    stops = _POSITIVE if step >= 0 else _NEGATIVE
    x = t * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    rgb = stops[i] + (stops[i + 1] - stops[i]) * (x - i)
    return "#%02x%02x%02x" % tuple(int(round(c)) for c in rgb), text_colour(rgb)


def colour(value: float, bound: float) -> tuple[str, str]:
    if not np.isfinite(value):
        return "#ffffff", "#000000"
    return _colour_at(int(round(max(-1.0, min(1.0, value / bound)) * 100)))


def legend(steps: int = 9) -> list[dict]:
    """Swatches from −bound to +bound for the legend."""
    out = []
    for i in range(steps):
        fraction = -1 + 2 * i / (steps - 1)
        bg, fg = _colour_at(int(round(fraction * 100)))
        out.append({"fraction": fraction, "bg": bg, "fg": fg, "text": f"{fraction:+.2g}×" if fraction else "0"})
    return out


def render_activation_rows(words, neurons, values, scale) -> list[dict]:
    """The rows of an activation map of one sentence: one row per neuron, one focusable cell per word.

    ``words``: the sentence; ``neurons``: NeuronIds or labels; ``values``: [n_words, n_neurons] array-like;
    ``scale``: one colour bound per neuron (a value of ±bound gets the end colour). Each row is
    ``{"neuron", "bound", "values", "cells_html"}``; render them with
    ``{% include "analysis/workspace/_map_rows.html" with map_rows=rows %}``. The cells are built here as one
    escaped string per row, not by a template loop: a page of the map has thousands of cells, and the template
    engine would spend most of the request's time on them. The first cell is the map's one tab stop
    (static/js/explore.js moves focus with the arrow keys)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(words), len(neurons))
    safe_words = [escape(w) for w in words]
    with np.errstate(invalid="ignore", divide="ignore"):
        steps = np.rint(np.clip(values / np.asarray(scale, dtype=np.float64), -1, 1) * 100)
    rows = []
    for j, neuron in enumerate(neurons):
        name = getattr(neuron, "label", str(neuron))
        label = escape(name)
        cells = []
        for i, (word, value) in enumerate(zip(safe_words, values[:, j].tolist())):
            finite = math.isfinite(value)
            text = f"{value:.3g}" if finite else "n/a"
            bg, fg = _colour_at(int(steps[i, j])) if finite else ("#ffffff", "#000000")
            cells.append(f'<span class="map-word" tabindex="{0 if i == 0 and j == 0 else -1}" role="img" '
                         f'aria-label="{word}: {label} = {text}" title="{label} = {text}" '
                         f'style="background:{bg};color:{fg}">{word}</span>')
        rows.append({"neuron": name, "bound": f"{float(scale[j]):.3g}", "values": values[:, j].tolist(),
                     "cells_html": mark_safe(" ".join(cells))})
    return rows


# ------------------------------------------------------------------------------------------------ corpus map


def sentence_search_index(store_key: str) -> dict[str, np.ndarray]:
    """Lower-cased word → the sentences (ascending) that contain it; built once per store per process."""

    def build():
        store = store_of(store_key)
        lowered = np.array([w.lower() for w in store.words], dtype=object)
        sentences = store.sentence_index
        order = np.argsort(lowered, kind="stable")
        words_sorted, sentence_sorted = lowered[order], sentences[order]
        cuts = np.flatnonzero(words_sorted[1:] != words_sorted[:-1]) + 1
        starts, stops = np.r_[0, cuts], np.r_[cuts, len(words_sorted)]
        return {str(words_sorted[a]): np.unique(sentence_sorted[a:b]) for a, b in zip(starts, stops)}

    return loaded.get(f"explore-search:{store_key}", build)


def _store(store_key: str):
    try:
        return store_of(store_key)
    except RuntimeError as error:  # the store is missing or incomplete
        raise ExploreError(str(error)[:1].upper() + str(error)[1:] + ".", status=200) from None


@lru_cache(maxsize=256)
def _column_source(store_key: str, neuron_set: str, layer: int):
    return store_of(store_key).array(neuron_set, layer)


def read_values(store_key: str, neurons, rows: np.ndarray) -> np.ndarray:
    """[len(rows), len(neurons)] float32 activations, reading only ``rows`` of each (set, layer) file."""
    out = np.empty((len(rows), len(neurons)), np.float32)
    by_array: dict[tuple[str, int], list[int]] = {}
    for j, n in enumerate(neurons):
        by_array.setdefault((n.set, n.layer), []).append(j)
    for (neuron_set, layer), columns in by_array.items():
        block = _column_source(store_key, neuron_set, layer)[rows]  # those rows only (memory-mapped)
        out[:, columns] = block[:, [neurons[j].unit for j in columns]]
    return out


def sentences_per_page(pool_size: int) -> int:
    return max(1, min(MAP_SENTENCES, MAP_ROWS // max(1, pool_size)))


def activation_map(chosen: Chosen, state: ViewState, neurons) -> dict:
    """The corpus page ``state.page`` (sentences matching ``state.q`` when given) with one row per pooled
    neuron per sentence."""
    key = chosen.store_key
    store = _store(key)
    query = state.q.strip()
    if query:
        if len(query.split()) != 1:
            raise ExploreError("Search for one word (the map finds the sentences that contain it).")
        matches = sentence_search_index(key).get(query.lower())
        sentences = matches if matches is not None else np.array([], np.int64)
    else:
        sentences = None
    total = store.n_sentences if sentences is None else len(sentences)
    per_page = sentences_per_page(len(neurons))
    page, pages, note = _page_within(state.page, total, per_page)
    start = (page - 1) * per_page
    shown = (np.arange(start, min(start + per_page, total)) if sentences is None
             else sentences[start:start + per_page])
    offsets = store.sentence_offsets
    stats = chosen.statistics()
    result = {"query": query, "total": total, "page": page, "pages": pages, "note": note, "sentences": [],
              "has_stats": stats is not None, "legend": legend(),
              "prev": state.query(page=page - 1) if page > 1 else None,
              "next": state.query(page=page + 1) if page < pages else None}
    if not neurons or not len(shown):
        return result
    rows = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in shown]).astype(np.int64)
    values = read_values(key, neurons, rows)
    scale = scales_for(stats, neurons, values)
    words = store.words
    cursor = 0
    for s in shown:
        length = int(offsets[s + 1] - offsets[s])
        sentence_words = words[offsets[s]:offsets[s + 1]]
        result["sentences"].append({"number": int(s) + 1, "words": sentence_words,
                                    "rows": render_activation_rows(sentence_words, neurons,
                                                                   values[cursor:cursor + length], scale)})
        cursor += length
    return result


# ------------------------------------------------------------------------------------------------ typed text


def typed_text(chosen: Chosen, text: str, neurons) -> dict:
    """Run a typed sentence on the realtime path: per word the most active neurons (z-scored by the statistics
    when the run has them) among the pool and the ranking's best ``TYPED_CANDIDATES``, and the pool's map."""
    from analysis.engine.neurons import NeuronId

    answer = _typed_activations(chosen, text, neurons)
    words, labels = answer["words"], answer["neurons"]
    values = np.asarray(answer["values"], dtype=np.float64)  # [words, neurons]
    ids = [NeuronId.parse(label) for label in labels]
    stats = chosen.statistics()
    z = _z_scores(stats, ids, values)
    per_word = []
    for w, word in enumerate(words):
        best = np.argsort(-np.abs((values if z is None else z)[w]), kind="stable")[:TYPED_TOP]
        per_word.append({"word": word, "neurons": [{"label": labels[j], "value": f"{values[w, j]:.3g}",
                                                   "z": None if z is None else f"{z[w, j]:+.2f}"} for j in best]})
    pooled = [labels.index(n.label) for n in neurons if n.label in labels]
    rows = []
    if pooled:
        pool_ids, pool_values = [ids[j] for j in pooled], values[:, pooled]
        rows = render_activation_rows(words, pool_ids, pool_values, scales_for(stats, pool_ids, pool_values))
    return {"text": text, "per_word": per_word, "z_scored": z is not None, "map_rows": rows,
            "searched": len(labels), "worker_ms": answer.get("worker_ms")}


def _typed_activations(chosen: Chosen, text: str, neurons) -> dict:
    """The realtime worker's activations of the pool and the ranking's best neurons on each typed word."""
    model = chosen.model
    if model is None or model.upload is None:
        raise ExploreError("The model of this ranking is no longer in the project, so a typed sentence cannot run.",
                           status=200)
    candidates = list(dict.fromkeys([n.label for n in neurons] + [n.label for n in
                                                                  chosen.ranking.top(TYPED_CANDIDATES)]))
    run = chosen.view.run
    try:
        arguments = realtime.validate_activations(run.project, {
            "model": model.pk, "sentence": text, "pool": candidates[:realtime.MAX_POOL],
            "top_k": 1, "aggregation": run.request.get("aggregation", "last")})
        return realtime.ask(realtime.ACTIVATIONS_TASK, arguments)
    except realtime.RealtimeRequestError as error:
        raise ExploreError(error.message, status=200) from None
    except (realtime.RealtimeUnavailable, realtime.RealtimeTimeout) as error:
        raise ExploreError(str(error), status=200) from None


def _z_scores(stats, ids, values: np.ndarray) -> np.ndarray | None:
    """``values`` [words, neurons] as z-scores over the corpus (the run's statistics); None without them."""
    if stats is None:
        return None
    mean, std = np.zeros(len(ids)), np.ones(len(ids))
    for j, neuron in enumerate(ids):
        try:
            i = stats.position(neuron)
        except KeyError:
            continue
        mean[j], std[j] = stats.arrays["mean"][i], stats.arrays["std"][i] or 1.0
    return (values - mean) / std
