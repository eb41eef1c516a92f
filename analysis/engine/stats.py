"""Neuron statistics (methods.md §5), precomputed once per store and served per neuron without touching it.

:func:`compute_neuron_stats` reads the store **column block by column block**: a block is a group of whole
layers (or a slice of one layer when a layer alone is over the memory budget), holding every word for those
neurons. Layers are separate files in the store, so reading layer after layer is one streaming pass over
the store, and every statistic is exact per neuron: mean, std (population), min, max, exact quantiles,
a histogram with ``n_bins`` equal bins between the neuron's own min and max, the mean per label, top words and
top contexts. Memory is bounded by ``max_bytes`` plus O(words) small per-word vectors (row ids, label ids,
word-type ids); the block width shrinks as the corpus grows.

Top words (the original demo's formula): z = (a − μ)/σ per occurrence, score(type) = Σz / (count + 4); the
``top_words`` types with the largest |score| are kept, signed. Per-type sums come from a sparse type×word
indicator times the block, so no per-occurrence table is kept. Top contexts: the ``top_contexts`` highest and
lowest activations with their row; the sentence index and word position come from the sentence offsets.
Sampled contexts: the activation range cut into ``context_bins`` equal-frequency bins, ``contexts_per_bin``
evenly spaced words from each (deterministic). Best label: see :func:`_label_detection`.

Speed: a float16 store is read as float16. One sort per column — of (value key, row) pairs packed in one
integer, which NumPy sorts with SIMD — serves min, max, exact quantiles, the histogram (a binary search for
each bin's first position), the extreme and sampled contexts and the AP (two binary searches per positive).
Per-type and per-label sums are sparse products with the block in float64. On UD EWT dev (MiniLM, 11,904
units × 25,147 words) this takes under half the CPU time of the version before (benchmarks/bench_science_fast.py).

Columns are read with :func:`features.column_blocks`; progress is reported in neurons (one report per block).
"""

from __future__ import annotations

import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .features import Features, column_blocks
from .neurons import NeuronId
from .jobs import Job, as_job
from .labels import check_labels
from .moments import indicator

DEFAULT_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclass
class NeuronStats:
    neuron_ids: list[NeuronId]
    arrays: dict[str, np.ndarray]  # see compute_neuron_stats for the keys
    label_names: list[str] = field(default_factory=list)
    vocabulary: list[str] = field(default_factory=list)  # word types referenced by top words / contexts
    params: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.neuron_ids)

    def position(self, neuron) -> int:
        if isinstance(neuron, (int, np.integer)):
            if not 0 <= neuron < len(self):
                raise IndexError(f"neuron position {neuron} out of range [0, {len(self)})")
            return int(neuron)
        neuron_id = NeuronId.parse(neuron) if isinstance(neuron, str) else neuron
        if not hasattr(self, "_positions"):
            self._positions = {n: i for i, n in enumerate(self.neuron_ids)}
        try:
            return self._positions[neuron_id]
        except KeyError:
            raise KeyError(f"no statistics for neuron {neuron_id}") from None

    def _contexts(self, i: int, which: str, words, window: int) -> list[dict]:
        a = self.arrays
        offsets = a["sentence_offsets"]
        out = []
        for row, value, word in zip(a[f"{which}_rows"][i], a[f"{which}_values"][i], a[f"{which}_words"][i]):
            if row < 0:
                continue
            sentence = int(np.searchsorted(offsets, row, side="right") - 1)
            position = int(row - offsets[sentence])
            item = {"value": float(value), "row": int(row), "sentence": sentence, "position": position,
                    "word": self.vocabulary[word] if word >= 0 else None}
            if words is not None:
                start, stop = int(offsets[sentence]), int(offsets[sentence + 1])
                item["left"] = list(words[max(start, row - window) : row])
                item["right"] = list(words[row + 1 : min(stop, row + 1 + window)])
            out.append(item)
        return out

    def for_neuron(self, neuron, words=None, window: int = 8) -> dict:
        """Everything a neuron page shows, JSON-ready. ``words`` (flat word list) adds the context words."""
        i = self.position(neuron)
        a = self.arrays
        low, high = float(a["min"][i]), float(a["max"][i])
        n_bins = a["histogram"].shape[1]
        top_words = [
            {"word": self.vocabulary[t], "score": float(s), "count": int(c)}
            for t, s, c in zip(a["top_word_types"][i], a["top_word_scores"][i], a["top_word_counts"][i])
            if t >= 0
        ]
        return {
            "neuron": self.neuron_ids[i].label,
            "mean": float(a["mean"][i]), "std": float(a["std"][i]), "min": low, "max": high,
            "quantiles": {str(q): float(v) for q, v in zip(self.params["quantiles"], a["quantiles"][i])},
            "histogram": {"edges": [float(e) for e in np.linspace(low, high, n_bins + 1)],
                          "counts": [int(c) for c in a["histogram"][i]]},
            "label_means": {name: (None if np.isnan(v) else float(v))
                            for name, v in zip(self.label_names, a["label_means"][i])},
            "top_words": top_words,
            "top_contexts": {"highest": self._contexts(i, "high", words, window),
                             "lowest": self._contexts(i, "low", words, window)},
            **self._range_and_detection(i, words, window),
        }

    def _range_and_detection(self, i: int, words, window: int) -> dict:
        """The fields added later (statistics saved before them lack their arrays: empty / None)."""
        a = self.arrays
        out = {"sampled_contexts": [], "best_label": None, "label_selectivity": {}}
        if "sampled_rows" in a:
            per_bin = int(self.params["contexts_per_bin"])
            contexts = self._contexts(i, "sampled", words, window)
            out["sampled_contexts"] = [{"bin": b, "of": int(self.params["context_bins"]),
                                        "contexts": contexts[b * per_bin : (b + 1) * per_bin]}
                                       for b in range(int(self.params["context_bins"]))]
        if "best_label" in a and a["best_label"][i] >= 0:
            label = int(a["best_label"][i])
            out["best_label"] = {"label": self.label_names[label], "ap": float(a["best_label_ap"][i]),
                                 "selectivity": float(a["label_selectivity"][i, label]),
                                 "direction": "high" if a["best_label_sign"][i] > 0 else "low"}
        if "label_selectivity" in a:
            out["label_selectivity"] = {name: (None if np.isnan(v) else float(v))
                                        for name, v in zip(self.label_names, a["label_selectivity"][i])}
        return out

    def save(self, path) -> tuple[Path, Path]:
        """Write ``<path>.npz`` (arrays) and ``<path>.json`` (ids, names, vocabulary, params); no pickle."""
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".npz", ".json") else base
        npz, meta = base.with_name(base.name + ".npz"), base.with_name(base.name + ".json")
        np.savez(npz, **self.arrays)
        meta.write_text(json.dumps({
            "neurons": [n.label for n in self.neuron_ids], "label_names": self.label_names,
            "vocabulary": self.vocabulary, "params": self.params,
        }))
        return npz, meta

    @classmethod
    def load(cls, path) -> "NeuronStats":
        base = Path(path)
        base = base.with_suffix("") if base.suffix in (".npz", ".json") else base
        meta = json.loads(base.with_name(base.name + ".json").read_text())
        with np.load(base.with_name(base.name + ".npz"), allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        return cls([NeuronId.parse(n) for n in meta["neurons"]], arrays, meta["label_names"],
                   meta["vocabulary"], meta["params"])


def word_types(words) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct words, int32 type id per word)."""
    vocabulary, type_ids = np.unique(np.asarray(list(words), dtype=object), return_inverse=True)
    return vocabulary, type_ids.astype(np.int32)


def top_word_scores(type_sums: np.ndarray, type_counts: np.ndarray, mean: np.ndarray, std: np.ndarray,
                    smoothing: float = 4.0) -> np.ndarray:
    """score(type) = Σz / (count + smoothing) with z = (a − μ)/σ; [T, w] from per-type sums [T, w]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z_sums = (type_sums - type_counts[:, None] * mean) / std
    z_sums[:, std == 0] = 0.0  # a constant neuron has no top words
    return z_sums / (type_counts[:, None] + smoothing)


def _top_along_rows(values: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """Row indices of the k largest (or smallest) values of each column, best first; ties by lower row."""
    k = min(k, values.shape[0])
    key = -values if largest else values
    part = np.argpartition(key, k - 1, axis=0)[:k] if k < values.shape[0] else np.tile(
        np.arange(values.shape[0])[:, None], (1, values.shape[1]))
    part_keys = np.take_along_axis(key, part, axis=0)
    order = np.lexsort((part, part_keys), axis=0)
    return np.take_along_axis(part, order, axis=0)


def sort_keys(block: np.ndarray) -> np.ndarray:
    """Unsigned integer keys [w, n] (one row per column of ``block`` [n, w]) ordered like the values.

    float16 gives uint16 keys, anything else is taken as float32 (uint32 keys). −0 is taken as +0 first, so
    equal values always have equal keys (ties are then broken by row)."""
    kind, unsigned, top = (np.float16, np.uint16, 15) if block.dtype == np.float16 else (np.float32, np.uint32, 31)
    bits = np.ascontiguousarray(block.T, dtype=kind).view(unsigned).copy()  # bit operations only from here
    sign = unsigned(1 << top)
    bits[bits == sign] = 0  # −0 → +0
    # negative: flip every bit; positive: flip the sign bit (in the key's own width, no int64 temporaries)
    bits ^= (bits >> unsigned(top)) * unsigned(sign - 1) | sign
    return bits


def sorted_columns(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order, sorted_keys)``, both [w, n], from :func:`sort_keys` ``keys`` [w, n]: each column's rows in
    ascending order of value (ties by lower row) and its keys in that order.

    One sort of (key, row) pairs packed into one integer: the pairs are distinct, so an unstable sort gives
    the stable order, and NumPy sorts 32-bit integers with SIMD, several times faster than it argsorts."""
    n = keys.shape[1]
    wide, shift = (np.uint32, 16) if keys.dtype == np.uint16 and n <= 1 << 16 else (np.uint64, 32)
    pairs = keys.astype(wide)
    pairs <<= wide(shift)
    pairs |= np.arange(n, dtype=wide)
    pairs.sort(axis=1)
    sorted_keys = np.right_shift(pairs, wide(shift), out=np.empty(keys.shape, keys.dtype), casting="unsafe")
    pairs &= wide((1 << shift) - 1)
    return pairs, sorted_keys


def key_values(keys: np.ndarray) -> np.ndarray:
    """float32 values of :func:`sort_keys` keys (the inverse map)."""
    if keys.dtype == np.uint16:
        bits = np.where(keys & 0x8000, keys & 0x7FFF, ~keys).astype(np.uint16)
        return bits.view(np.float16).astype(np.float32)
    bits = np.where(keys & 0x80000000, keys & 0x7FFFFFFF, ~keys).astype(np.uint32)
    return bits.view(np.float32)


def quantiles_from_sorted(value_at, n: int, quantiles) -> np.ndarray:
    """[w, Q] quantiles (NumPy's linear interpolation) from ``value_at(positions)`` → the [w, len] values at
    those positions of each column sorted ascending (n values per column)."""
    positions = (n - 1) * np.asarray(quantiles, dtype=np.float64)
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    fraction = positions - below
    low, high = value_at(below).astype(np.float64), value_at(above).astype(np.float64)
    return low + fraction * (high - low)


def histogram_from_sorted(sorted_keys: np.ndarray, low: np.ndarray, high: np.ndarray, n_bins: int) -> np.ndarray:
    """[w, n_bins] counts in ``n_bins`` equal bins between each column's min and max (the max in the last bin).

    The bin of a value is ``int((v − low) / span · n_bins)``; it only rises along a sorted column, so each
    bin's first position is found by a binary search (all columns and bins at once) instead of binning every
    value: the same counts as binning them all."""
    w, n = sorted_keys.shape
    low32, span = low.astype(np.float32)[:, None], np.where(high > low, high - low, 1.0).astype(np.float64)[:, None]
    wanted = np.arange(1, n_bins)[None, :]
    rows = np.arange(w)[:, None]
    first, stop = np.zeros((w, n_bins - 1), np.int64), np.full((w, n_bins - 1), n, np.int64)
    while np.any(first < stop):  # first position whose bin is ≥ the wanted one
        middle = (first + stop) // 2
        value = key_values(sorted_keys[rows, np.minimum(middle, n - 1)])
        below = ((value - low32) / span * n_bins).astype(np.int64) < wanted
        searching = first < stop
        first = np.where(searching & below, middle + 1, first)
        stop = np.where(searching & ~below, middle, stop)
    edges = np.concatenate([np.zeros((w, 1), np.int64), first, np.full((w, 1), n, np.int64)], axis=1)
    return np.diff(edges, axis=1)


def sampled_positions(n: int, n_bins: int, per_bin: int) -> np.ndarray:
    """Sorted positions of ``per_bin`` evenly spaced words in each of ``n_bins`` equal-frequency bins."""
    fractions = (np.arange(n_bins)[:, None] + (np.arange(per_bin)[None, :] + 0.5) / per_bin) / n_bins
    return np.minimum((fractions.ravel() * n).astype(np.int64), n - 1)


def average_precision_from_sorted(everyone: np.ndarray, positives: np.ndarray, high: bool = True) -> float:
    """AP of a score for a concept, from every word's score key (sorted ascending) and the positives' (sorted).

    ``high``: higher values detect the concept (else lower ones do: the score is the negated value). With
    equal scores as one threshold (scikit-learn's rule), each positive adds the precision at the end of its
    tie group, TP(score ≥ s) / N(score ≥ s), so AP is the mean of that ratio over the positives: two binary
    searches per positive, nothing done per word."""
    if high:
        at_least = len(everyone) - np.searchsorted(everyone, positives, side="left")
        positive_at_least = len(positives) - np.searchsorted(positives, positives, side="left")
    else:
        at_least = np.searchsorted(everyone, positives, side="right")
        positive_at_least = np.searchsorted(positives, positives, side="right")
    return float(np.mean(positive_at_least / at_least))


def default_threads() -> int:
    """The cores this process may use (at most 4: the blocks' memory grows with them)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def compute_neuron_stats(features: Features, words=None, sentence_offsets=None, labels=None, label_names=(),
                         n_bins: int = 32, quantiles=DEFAULT_QUANTILES, top_words: int = 20,
                         top_contexts: int = 10, smoothing: float = 4.0, context_bins: int = 8,
                         contexts_per_bin: int = 3, max_bytes: int = 256 << 20, threads: int | None = None,
                         job: Job | None = None) -> NeuronStats:
    job = as_job(job)
    n, width = features.shape
    if n == 0:
        raise ValueError("no words: cannot compute neuron statistics on an empty store")
    offsets = _checked_offsets(sentence_offsets, n)
    label_names = list(label_names)
    labels, label_groups, label_counts, label_rows = _label_groups(labels, label_names, n)
    vocabulary, type_ids, type_groups, type_counts = _word_type_groups(words, n)
    n_types = len(vocabulary)
    k_words = min(top_words, n_types) if words is not None else 0
    k_ctx = min(top_contexts, n)
    quantiles = tuple(float(q) for q in quantiles)

    arrays = _empty_arrays(width, offsets, n_quantiles=len(quantiles), n_bins=n_bins, n_labels=len(label_names),
                           top_words=top_words, top_contexts=top_contexts,
                           n_sampled=context_bins * contexts_per_bin)
    sample_at = sampled_positions(n, context_bins, contexts_per_bin)

    # a float16 store is read as float16 (its sort keys are 16 bits: radix sorts); anything else as float32
    native = np.float16 if all(getattr(b, "dtype", None) == np.float16 for b in features.blocks) else np.float32
    # per column: the block as read, as float32 and as float64 (and its unlabelled rows), its keys,
    # the packed (key, row) pairs that become the order, the sorted keys; per-type sums and scores
    column_bytes = n * (2 + 4 + 8 + 8 + 2 + 8 + 2) + n_types * 24

    def block_statistics(start: int, stop: int, block: np.ndarray) -> int:
        """Every statistic of columns start:stop, written into ``arrays`` (disjoint slices: thread-safe)."""
        cols = slice(start, stop)
        # one sort per column gives min, max, quantiles, histogram, extreme and sampled contexts, and the AP
        keys = sort_keys(block)  # [w, n]
        order, ordered_keys = sorted_columns(keys)
        block = block.astype(np.float32, copy=False)
        mean = block.mean(axis=0, dtype=np.float64)
        mean32 = mean.astype(np.float32)
        squares = np.sum(np.square(block - mean32), axis=0, dtype=np.float64)  # about the float32 mean
        variance = squares / n - (mean - mean32) ** 2
        std = np.sqrt(np.maximum(variance, 0.0))

        def value_at(positions):
            return key_values(ordered_keys[:, positions])

        low, high = value_at(0), value_at(n - 1)
        arrays["mean"][cols], arrays["std"][cols], arrays["min"][cols], arrays["max"][cols] = mean, std, low, high
        arrays["quantiles"][cols] = quantiles_from_sorted(value_at, n, quantiles)
        arrays["histogram"][cols] = histogram_from_sorted(ordered_keys, low, high, n_bins)
        block64 = block.astype(np.float64)  # the sparse sums add in float64
        if labels is not None:
            _label_detection(arrays, cols, block64, keys, ordered_keys, label_groups, label_rows, label_counts, mean,
                             squares - n * (mean - mean32) ** 2)
        del keys
        if k_words:
            scores = top_word_scores(type_groups @ block64, type_counts, mean, std, smoothing)
            best = _top_along_rows(np.abs(scores), k_words, largest=True)
            arrays["top_word_types"][cols, :k_words] = np.where(std[:, None] > 0, best.T, -1)
            arrays["top_word_scores"][cols, :k_words] = np.take_along_axis(scores, best, axis=0).T
            arrays["top_word_counts"][cols, :k_words] = type_counts[best].T
            del scores
        # highest: from the top of the ascending order, so equal values come higher row first
        for which, positions in (("high", np.arange(n - 1, n - 1 - k_ctx, -1)), ("low", np.arange(k_ctx)),
                                 ("sampled", sample_at)):
            chosen = order[:, positions]
            arrays[f"{which}_rows"][cols, : len(positions)] = chosen
            arrays[f"{which}_values"][cols, : len(positions)] = value_at(positions)
            if type_ids is not None:
                arrays[f"{which}_words"][cols, : len(positions)] = type_ids[chosen]
        return stop

    # Column blocks are independent and their NumPy work (sorts, casts, sparse sums, searches) runs without the
    # GIL, so ``threads`` blocks are computed at once; each is 1/threads of the memory budget, so the peak stays.
    threads = max(1, min(threads or default_threads(), width))
    blocks = column_blocks(features, max_bytes=max_bytes // threads, column_bytes=column_bytes, dtype=native)
    _run_blocks(block_statistics, blocks, threads, width, job)

    used = _renumber_word_types(arrays, n_types)
    params = {"n_words": int(n), "n_bins": n_bins, "quantiles": list(quantiles), "top_words": top_words,
              "top_contexts": top_contexts, "smoothing": smoothing, "std": "population",
              "quantile_method": "exact (numpy linear interpolation)", "context_bins": context_bins,
              "contexts_per_bin": contexts_per_bin,
              "best_label": "largest |selectivity|; AP of the activation (sign of the selectivity) for it vs rest"}
    return NeuronStats(list(features.neuron_ids), arrays, label_names, [str(w) for w in vocabulary[used]], params)


def _checked_offsets(sentence_offsets, n: int) -> np.ndarray:
    """The sentence offsets as int64 (one sentence of every word when None), checked to rise from 0 to n."""
    offsets = np.asarray([0, n] if sentence_offsets is None else sentence_offsets, dtype=np.int64)
    if offsets[0] != 0 or offsets[-1] != n or np.any(np.diff(offsets) < 0):
        raise ValueError(f"sentence_offsets must rise from 0 to the number of words ({n})")
    return offsets


def _label_groups(labels, label_names: list, n: int):
    """(labels, label_groups, label_counts, label_rows) for the per-label statistics, all None when there are
    no labels: the checked labels, a label × word indicator (unlabelled words form one more group, whose sums
    are not used), the words per label (float64) and each label's rows, then the unlabelled ones."""
    if labels is not None and not label_names:
        labels = None  # a corpus without labels (every id -1): no label means to compute
    if labels is None:
        return None, None, None, None
    labels = check_labels(labels, label_names, n)
    label_groups = indicator(np.where(labels >= 0, labels, len(label_names)), len(label_names) + 1)
    label_counts = np.bincount(labels[labels >= 0], minlength=len(label_names)).astype(np.float64)
    label_rows = [np.flatnonzero(labels == label) for label in [*range(len(label_names)), -1]]
    return labels, label_groups, label_counts, label_rows


def _word_type_groups(words, n: int):
    """(vocabulary, type_ids, type_groups, type_counts) for the top words: the word types, each word's type,
    a type × word indicator and the words per type (float64); an empty vocabulary and Nones without words."""
    if words is None:
        return np.array([], dtype=object), None, None, None
    if len(words) != n:
        raise ValueError(f"{len(words)} words for {n} feature rows")
    vocabulary, type_ids = word_types(words)
    type_groups = indicator(type_ids, len(vocabulary))
    type_counts = np.bincount(type_ids, minlength=len(vocabulary)).astype(np.float64)
    return vocabulary, type_ids, type_groups, type_counts


def _empty_arrays(width: int, offsets: np.ndarray, *, n_quantiles: int, n_bins: int, n_labels: int, top_words: int,
                  top_contexts: int, n_sampled: int) -> dict:
    """The statistics' arrays for ``width`` neurons, before any block fills its columns."""
    arrays = {
        "mean": np.zeros(width), "std": np.zeros(width),
        "min": np.zeros(width, np.float32), "max": np.zeros(width, np.float32),
        "quantiles": np.zeros((width, n_quantiles), np.float32),
        "histogram": np.zeros((width, n_bins), np.int64),
        "label_means": np.full((width, n_labels), np.nan, np.float32),
        "top_word_types": np.full((width, top_words), -1, np.int32),
        "top_word_scores": np.zeros((width, top_words), np.float32),
        "top_word_counts": np.zeros((width, top_words), np.int32),
        "sentence_offsets": offsets,
    }
    for which, k in (("high", top_contexts), ("low", top_contexts), ("sampled", n_sampled)):
        arrays[f"{which}_rows"] = np.full((width, k), -1, np.int64)
        arrays[f"{which}_values"] = np.zeros((width, k), np.float32)
        arrays[f"{which}_words"] = np.full((width, k), -1, np.int32)
    arrays["label_selectivity"] = np.full((width, n_labels), np.nan, np.float32)
    arrays["best_label"] = np.full(width, -1, np.int32)
    arrays["best_label_ap"] = np.full(width, np.nan, np.float32)
    arrays["best_label_sign"] = np.zeros(width, np.int8)
    return arrays


def _run_blocks(block_statistics, blocks, threads: int, width: int, job: Job) -> None:
    """Compute up to ``threads`` column blocks at once, reporting progress (and checking for a cancel) as each
    one ends, in order."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        running: deque = deque()
        for start, stop, block in blocks:
            running.append(pool.submit(block_statistics, start, stop, block))
            del block
            if len(running) >= threads:
                job.progress(running.popleft().result(), width, "neurons")
                job.check_cancelled()
        while running:
            job.progress(running.popleft().result(), width, "neurons")


_WORD_TYPE_ARRAYS = ("top_word_types", "high_words", "low_words", "sampled_words")


def _renumber_word_types(arrays: dict, n_types: int) -> np.ndarray:
    """Keep only the word types that something refers to, renumbered in ``arrays``; returns the old ids kept."""
    used = np.unique(np.concatenate([arrays[key][arrays[key] >= 0].ravel() for key in _WORD_TYPE_ARRAYS]))
    remap = np.full(n_types + 1, -1, np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    for key in _WORD_TYPE_ARRAYS:
        arrays[key] = remap[arrays[key]]  # -1 indexes the trailing -1
    return used


def _label_detection(arrays, cols, block, keys, sorted_keys, label_groups, label_rows, label_counts, mean,
                     squares) -> None:
    """Per-label means and selectivity, and the best-detected label with its average precision.

    Selectivity of label t: (mean on t − mean on the other labelled words) / the pooled within-group std of
    the two groups (Cohen's d, population form). The best label
    is the one with the largest |selectivity|; its AP is that of the activation (negated when the
    selectivity is negative) as a score for "t vs every other word" (unlabelled words count as negatives),
    with tied values as one threshold, as in :func:`baselines.average_precision_columns`.

    ``block``: the float64 block [n, w]; ``keys`` / ``sorted_keys``: its sort keys [w, n], as they are and
    sorted; ``label_rows``: each label's rows, then the unlabelled ones; ``squares``: Σ (x − mean)² over every
    word, of which the within-group sum of squares only needs the labelled words' part. Sums are taken about
    the neuron's mean, so the sums of squares do not cancel."""
    n_labels = len(label_counts)
    sums = (label_groups @ block).T[:, :n_labels]  # [w, C]
    unlabelled = label_rows[n_labels]
    squares = squares - np.sum(np.square(block[unlabelled] - mean), axis=0)  # the labelled words' part
    with np.errstate(invalid="ignore", divide="ignore"):
        label_means = sums / label_counts
        sums = sums - label_counts * mean[:, None]  # about the mean
        rest = label_counts.sum() - label_counts
        centred_means = sums / label_counts
        rest_means = (sums.sum(axis=1, keepdims=True) - sums) / rest
        within = squares[:, None] - label_counts * centred_means**2 - rest * rest_means**2
        pooled = np.sqrt(np.maximum(within, 0.0) / label_counts.sum())
        selectivity = np.where(pooled > 0, (centred_means - rest_means) / pooled, np.nan)
    arrays["label_means"][cols] = label_means
    arrays["label_selectivity"][cols] = selectivity
    present = (label_counts > 0) & (rest > 0)
    scored = np.where(present & ~np.isnan(selectivity), np.abs(selectivity), -1.0)
    best = np.argmax(scored, axis=1)
    valid = scored[np.arange(len(best)), best] >= 0
    sign = np.where(np.take_along_axis(selectivity, best[:, None], axis=1)[:, 0] < 0, -1, 1)
    ap = np.full(len(best), np.nan)
    for label in np.unique(best[valid]):
        columns = np.flatnonzero(valid & (best == label))
        # the positives' keys, sorted ("stable" is NumPy's radix sort for 16-bit keys, ~8× its default here)
        positives = np.sort(keys[np.ix_(columns, label_rows[label])], axis=1, kind="stable")
        for column, column_positives in zip(columns, positives):
            ap[column] = average_precision_from_sorted(sorted_keys[column], column_positives, sign[column] > 0)
    arrays["best_label"][cols] = np.where(valid, best, -1)
    arrays["best_label_ap"][cols] = np.where(valid, ap, np.nan)
    arrays["best_label_sign"][cols] = np.where(valid, sign, 0)
