"""What a neuron's page shows (its ``views.py``), read through the run's :class:`RunView`: where
the neuron is in the run, its statistics in words, its rank in each of the run's rankings, and its correlations
(with the other neurons of its model, with the other models' neurons, and with the word's position in its
sentence).

Correlations read the activation store in row blocks (never the whole store at once) and are cached per process
by (store key, neuron) in ``analysis.workspace.run_view.loaded``: the first look at a neuron reads its model's
selected layers once (``benchmarks/bench_neuron.py``: about 4 s on 25k words × 11,904 neurons, 2 cores loaded by
other work), so the page loads them in a partial after it has drawn; a second look is a dictionary lookup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from analysis.engine.features import release_pages
from analysis.engine.neurons import NeuronId
from analysis.models import ResultKind, StepState
from analysis.workspace.run_view import (
    is_crossmodel, loaded, ranking_over, RunModel, RunView, statistics_of, store_of, stores_of,
)

TOP_CORRELATED = 10
CHUNK_BYTES = 1 << 20  # float32 rows of one layer read at once for a correlation pass (fits the CPU cache)
POSITION_BUCKETS = 10  # word positions 1..9 and "10 or later"

UPOS_NAMES = {
    "ADJ": "adjectives", "ADP": "adpositions", "ADV": "adverbs", "AUX": "auxiliaries",
    "CCONJ": "coordinating conjunctions", "DET": "determiners", "INTJ": "interjections", "NOUN": "nouns",
    "NUM": "numerals", "PART": "particles", "PRON": "pronouns", "PROPN": "proper nouns", "PUNCT": "punctuation",
    "SCONJ": "subordinating conjunctions", "SYM": "symbols", "VERB": "verbs", "X": "other words",
}


class NeuronNotFound(Exception):
    """The label is not a neuron of this run; the message says why, for the 404 page."""


def label_name(tag: str, label_names) -> str:
    """``determiners (DET)`` where the run's labels are UPOS tags, else the tag itself."""
    if label_names and set(label_names) <= set(UPOS_NAMES):
        return f"{UPOS_NAMES[tag]} ({tag})"
    return tag


def detection_sentence(best: dict | None, label_names) -> str | None:
    """The best-detected label in words: "Fires on determiners (DET): AP 0.93, selectivity 0.80"."""
    if not best:
        return None
    lead = "Fires on" if best["direction"] == "high" else "Fires least on"
    return (f"{lead} {label_name(best['label'], label_names)}: AP {best['ap']:.2f}, "
            f"selectivity {best['selectivity']:.2f}")


# ------------------------------------------------------------------------------------------------ the neuron


def selected_features(view: RunView, store_key: str):
    """The run's selected neurons (sets × layers) of one model's store, as engine Features (memmaps)."""
    sets, layers = view.selection
    return store_of(store_key).features(sets, layers)


def _positions(view: RunView, store_key: str) -> dict:
    sets, layers = view.selection
    return loaded.get(f"positions:{store_key}:{sets}:{layers}",
                      lambda: {n: i for i, n in enumerate(selected_features(view, store_key).neuron_ids)})


@dataclass(frozen=True)
class NeuronInRun:
    neuron: NeuronId
    model: RunModel
    models: tuple[RunModel, ...]  # every model of the run
    column: int  # position among the run's selected neurons of its model

    @property
    def label(self) -> str:
        return self.neuron.label


def find_neuron(view: RunView, label: str, store_key: str | None = None) -> NeuronInRun:
    """The neuron ``label`` of the model ``store_key`` (default: the run's first), else ``NeuronNotFound``."""
    try:
        neuron = NeuronId.parse(label)
    except ValueError:
        raise NeuronNotFound(f"“{label}” is not a neuron label: write it as L3:117 (the hidden state of layer "
                             "3, unit 117) or mlp.L3:117.") from None
    models = view.models
    if not models:
        state = "is still computing" if any(step.state != StepState.SUCCEEDED for step in
                                            view.steps_building(ResultKind.STORE)) else "has no activations"
        raise NeuronNotFound(f"This run {state}, so it has no neuron pages yet.")
    model = next((m for m in models if m.store_key == store_key), models[0])
    try:
        column = _positions(view, model.store_key).get(neuron)
    except RuntimeError as error:  # the store's files are gone: say so (and how to rebuild), not a server error
        raise NeuronNotFound(f"{str(error)[:1].upper()}{str(error)[1:]}.") from None
    if column is None:
        sets, layers = view.selection
        chosen = f"{', '.join(sets)}, layers {', '.join(map(str, layers)) if layers else 'all'}"
        raise NeuronNotFound(f"{neuron.label} is not one of this run's neurons ({chosen}) in {model.name}.")
    return NeuronInRun(neuron, model, tuple(models), column)


def neuron_statistics(found: NeuronInRun) -> dict | None:
    """``NeuronStats.for_neuron`` of the neuron (with context words), or None when the run has no statistics."""
    step = found.model.statistics_step
    if step is None:
        return None
    store = store_of(found.model.store_key)
    return statistics_of(step).for_neuron(found.neuron, words=store.words)


# ------------------------------------------------------------------------------------------------ ranks


def _rank_entry(step, ranking, neuron: NeuronId, store_key: str) -> dict | None:
    positions = loaded.get(f"positions:{step.result_key}:{store_key}",
                           lambda: {n: i for i, n in enumerate(ranking.neuron_ids)})
    i = positions.get(neuron)
    if i is None:
        return None
    where = np.flatnonzero(ranking.order == i)
    confidence = ranking.confidence or {}
    low, high = confidence.get("rank_low"), confidence.get("rank_high")
    score = ranking.scores[i]
    return {
        "step": step, "method": ranking.method, "rank": int(where[0]) + 1, "of": len(ranking.order),
        "score": None if not np.isfinite(score) else float(score),
        "interval": (int(low[i]) + 1, int(high[i]) + 1) if low is not None else None,
        "per_label": [{"label": label, "rank": int(np.flatnonzero(order == i)[0]) + 1}
                      for label, order in sorted(ranking.per_label.items()) if np.any(order == i)],
    }


def ranks_of(found: NeuronInRun) -> list[dict]:
    """The neuron's rank (1 = best) in each ranking of the run over its model, with per-label ranks."""
    key, out = found.model.store_key, []
    for step in found.model.ranking_steps:
        ranking = ranking_over(step, key)
        if entry := _rank_entry(step, ranking, found.neuron, key):
            out.append({**entry, "method": f"cross-model {ranking.method}"} if is_crossmodel(step) else entry)
    return out


# ------------------------------------------------------------------------------------------------ correlations


def neuron_column(store, neuron: NeuronId) -> np.ndarray:
    """One neuron's activation on every word, float64 (a strided read of one layer file)."""
    return np.asarray(store.array(neuron.set, neuron.layer)[:, neuron.unit], dtype=np.float64)


def pearson_against(target: np.ndarray, features, chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """Pearson's r of ``target`` [n] with every column of ``features`` [n, w] (engine Features over the store's
    memmaps), one stored layer at a time in row chunks of about ``chunk_bytes`` as float32: a chunk stays in the
    CPU cache for its product and sums, so a pass costs little more than reading the float16 file (whole-width
    row blocks measured about 1.8× slower, see ``benchmarks/bench_neuron.py``). The target is centred exactly;
    each column is shifted by its first chunk's mean before squaring, so the sums of squares do not cancel. A
    constant column (or target) gives NaN."""
    n = features.shape[0]
    x = target - target.mean()
    sxx, x32 = float(x @ x), x.astype(np.float32)
    out = []
    for block in features.blocks:
        units = block.shape[1]
        step = max(16, chunk_bytes // (4 * units))
        sxy, sy, syy, shift = np.zeros(units), np.zeros(units), np.zeros(units), None
        for start in range(0, n, step):
            part = np.asarray(block[start : start + step], dtype=np.float32)
            if shift is None:
                shift = part.mean(axis=0)
            part -= shift
            sxy += x32[start : start + step] @ part  # Σ x (y − c) = Σ x y, since Σ x = 0
            sy += part.sum(axis=0, dtype=np.float64)
            syy += np.einsum("ij,ij->j", part, part, dtype=np.float64)
        release_pages(block)
        syy -= sy * sy / n  # Σ(y − ȳ)²
        with np.errstate(invalid="ignore", divide="ignore"):
            r = sxy / np.sqrt(sxx * syy)
        r[(syy <= 0) | (sxx <= 0)] = np.nan
        out.append(r)
    return np.clip(np.concatenate(out), -1.0, 1.0)


def _strongest(r: np.ndarray, neuron_ids, skip: int | None, k: int = TOP_CORRELATED) -> list[dict]:
    score = np.where(np.isnan(r), -1.0, np.abs(r))
    if skip is not None:
        score[skip] = -1.0
    best = [i for i in np.argsort(-score, kind="stable")[:k] if score[i] >= 0]
    return [{"neuron": neuron_ids[i].label, "r": float(r[i])} for i in best]


def correlated_in_model(view: RunView, found: NeuronInRun) -> dict:
    """The neurons of the same model (the run's selection) most correlated with this one, by |r|, with how many
    neurons and words were compared and how long the (first, uncached) pass took."""
    key = found.model.store_key

    def compute():
        started = time.perf_counter()
        features = selected_features(view, key)
        r = pearson_against(neuron_column(store_of(key), found.neuron), features)
        return {"neurons": _strongest(r, features.neuron_ids, skip=found.column), "of": features.shape[1],
                "words": features.shape[0], "seconds": time.perf_counter() - started}

    sets, layers = view.selection
    return loaded.get(f"correlated:{key}:{found.label}:{sets}:{layers}", compute)


def crossmodel_stores(view: RunView, found: NeuronInRun) -> list[RunModel]:
    """The other models of the run's cross-model rankings (their stores cover the same corpus)."""
    keys = {k for step in view.rankings if is_crossmodel(step) for k in stores_of(step)}
    if found.model.store_key not in keys:
        return []
    return [m for m in found.models if m.store_key in keys and m.store_key != found.model.store_key]


def correlated_in_other_models(view: RunView, found: NeuronInRun) -> list[dict]:
    """For each other model of the run's cross-model rankings: its neurons most correlated with this one,
    word by word (the stores hold one row per corpus word, in corpus order), or why they cannot be aligned."""
    key, out = found.model.store_key, []
    target = None
    for other in crossmodel_stores(view, found):
        store, other_store = store_of(key), store_of(other.store_key)
        if store.n_words != other_store.n_words or store.meta.get("corpus_sha256") != other_store.meta.get(
                "corpus_sha256"):
            out.append({"model": other, "neurons": [], "error": f"{other.name}'s activations are over another "
                        "corpus, so its words cannot be aligned with these."})
            continue

        def compute(other=other):
            nonlocal target
            target = neuron_column(store, found.neuron) if target is None else target
            features = selected_features(view, other.store_key)
            return _strongest(pearson_against(target, features), features.neuron_ids, skip=None)

        sets, layers = view.selection
        neurons = loaded.get(f"correlated:{key}:{found.label}:{other.store_key}:{sets}:{layers}", compute)
        out.append({"model": other, "neurons": neurons, "error": None})
    return out


def position_correlation(found: NeuronInRun) -> dict:
    """Pearson's r between the activation and the word's position in its sentence (1 = first word), with the
    mean activation at each position, so a pattern that is not a straight line shows too."""
    store = store_of(found.model.store_key)

    def compute():
        values = neuron_column(store, found.neuron)
        position = np.arange(store.n_words) - store.sentence_offsets[store.sentence_index] + 1
        bucket = np.minimum(position, POSITION_BUCKETS)
        counts = np.bincount(bucket, minlength=POSITION_BUCKETS + 1)[1:]
        sums = np.bincount(bucket, weights=values, minlength=POSITION_BUCKETS + 1)[1:]
        x, y = values - values.mean(), position - position.mean()
        denominator = np.sqrt((x @ x) * (y @ y))
        r = float(x @ y / denominator) if denominator > 0 else None
        return {"r": r, "n": int(store.n_words), "means": [
            {"position": f"{p}" if p < POSITION_BUCKETS else f"{p}+", "count": int(c),
             "mean": float(s / c) if c else None} for p, c, s in zip(range(1, POSITION_BUCKETS + 1), counts, sums)]}

    return loaded.get(f"position:{found.model.store_key}:{found.label}", compute)


# ------------------------------------------------------------------------------------------------ drawing


HISTOGRAM = {"width": 640, "height": 220, "left": 56, "right": 12, "top": 12, "bottom": 44}


def histogram_chart(histogram: dict) -> dict:
    """Bars of the neuron's histogram in SVG coordinates (equal bins between its min and max), with axis ticks."""
    box, counts, edges = HISTOGRAM, histogram["counts"], histogram["edges"]
    plot_w = box["width"] - box["left"] - box["right"]
    plot_h = box["height"] - box["top"] - box["bottom"]
    tallest = max(max(counts, default=0), 1)
    bar_w = plot_w / max(len(counts), 1)
    bars = []
    for i, count in enumerate(counts):
        h = plot_h * count / tallest
        bars.append({"x": box["left"] + i * bar_w, "y": box["top"] + plot_h - h, "w": max(bar_w - 1, 1), "h": h,
                     "low": edges[i], "high": edges[i + 1], "count": count,
                     "label_y": max(box["top"] + plot_h - h - 4, box["top"] + 10)})
    baseline = box["top"] + plot_h
    x_ticks = [{"x": box["left"] + plot_w * f, "value": edges[0] + (edges[-1] - edges[0]) * f}
               for f in (0, 0.25, 0.5, 0.75, 1)]
    y_ticks = [{"y": baseline - plot_h * f, "value": round(tallest * f)} for f in (0, 0.5, 1)]
    return {**box, "bars": bars, "baseline": baseline, "plot_right": box["left"] + plot_w, "x_ticks": x_ticks,
            "y_ticks": y_ticks, "total": sum(counts), "axis_y": box["height"] - 6, "plot_h": plot_h}


def label_mean_rows(statistics: dict, label_names) -> list[dict]:
    """Per-label means with a bar length (share of the largest |mean|) and selectivity, for a table."""
    means = statistics["label_means"]
    largest = max((abs(v) for v in means.values() if v is not None), default=0) or 1.0
    selectivity = statistics.get("label_selectivity", {})
    return [{"label": label, "name": label_name(label, label_names), "mean": value,
             "bar": 0 if value is None else round(100 * abs(value) / largest),
             "negative": value is not None and value < 0, "selectivity": selectivity.get(label)}
            for label, value in means.items()]
