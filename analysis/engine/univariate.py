"""Univariate feature selection (methods.md §2.2): ANOVA F per neuron, mutual information as an option.

Also home of the streamed per-class sufficient statistics (:func:`class_moments`) that the probeless ranking
and the mean-difference baseline reuse, and of the label checks every labelled ranking shares.

Deviation from calling ``sklearn.feature_selection.f_classif`` directly: that needs the whole matrix in memory.
We stream rows in batches, accumulate per-class counts, sums and sums of squares in float64 (values shifted by
a per-neuron reference so the subtraction in the variance does not cancel), and compute the same F statistic
from them; the tests check equality with scikit-learn. Mutual information has no streamed form: it reads the
chosen rows (a seeded subsample of at most ``max_rows``) column block by column block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import Features
from .ranking import Ranking, order_by_score

# float64 copies of one batch stay around this size, whatever the width
BATCH_BYTES = 64 << 20


def batch_rows_for(width: int, bytes_per_value: int = 8, budget: int = BATCH_BYTES) -> int:
    """Rows per batch so that one float64 copy of a batch stays near ``budget`` bytes."""
    return int(max(64, min(8192, budget // max(1, width * bytes_per_value))))


def labelled_rows(labels, n_words: int, n_labels: int, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``labels`` and return ``(rows, their label ids)`` for the rows that carry a label.

    ``rows`` (default: every word) may contain repeats (bootstrap resamples); repeats are kept.
    Label -1 means missing and is excluded.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n_words:
        raise ValueError(f"labels must be one id per word: got shape {labels.shape} for {n_words} words")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer ids (-1 = missing), got dtype {labels.dtype}")
    if labels.size and (labels.min() < -1 or labels.max() >= n_labels):
        raise ValueError(f"label ids must be in [-1, {n_labels - 1}] for {n_labels} label names, "
                         f"found range [{labels.min()}, {labels.max()}]")
    rows = np.arange(n_words) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n_words):
        raise ValueError(f"row indices must be in [0, {n_words}), found [{rows.min()}, {rows.max()}]")
    keep = labels[rows] >= 0
    rows = rows[keep]
    if rows.size == 0:
        raise ValueError("no labelled words among the chosen rows")
    return rows, labels[rows].astype(np.int64)


def reference_values(features: Features, rows: np.ndarray) -> np.ndarray:
    """A per-neuron shift (median of the first rows) that keeps streamed sums of squares well conditioned.

    A median of identical values is exact, so constant neurons become exactly zero after the shift.
    """
    return np.median(features.rows(np.sort(rows[:256])).astype(np.float64), axis=0)


def indicator(ids: np.ndarray, n_groups: int) -> "scipy.sparse.csr_matrix":  # noqa: F821
    """Sparse [n_groups, len(ids)] 0/1 matrix: ``indicator(ids) @ X`` gives the per-group column sums of X."""
    from scipy import sparse

    return sparse.csr_matrix((np.ones(len(ids)), (ids, np.arange(len(ids)))), shape=(n_groups, len(ids)))


@dataclass
class ClassMoments:
    counts: np.ndarray  # [C] words per class
    sums: np.ndarray  # [C, D] sums of (value - shift)
    squares: np.ndarray | None  # [C, D] sums of (value - shift)^2, when asked for
    shift: np.ndarray  # [D]

    @property
    def present(self) -> np.ndarray:
        return self.counts > 0

    def means(self) -> np.ndarray:
        """[C, D] class means (NaN for classes with no word)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.counts[:, None] + self.shift


def class_moments(features: Features, labels, n_labels: int, rows=None, squares: bool = True,
                  batch_size: int | None = None) -> ClassMoments:
    """One streaming pass: per-class counts, sums (and sums of squares) of every neuron."""
    rows, ids = labelled_rows(labels, len(features), n_labels, rows)
    width = features.shape[1]
    batch_size = batch_size or batch_rows_for(width)
    shift = reference_values(features, rows)
    sums = np.zeros((n_labels, width))
    sq = np.zeros((n_labels, width)) if squares else None
    for start in range(0, len(rows), batch_size):
        batch_rows = rows[start : start + batch_size]
        values = features.rows(batch_rows).astype(np.float64) - shift
        groups = indicator(ids[start : start + batch_size], n_labels)
        sums += groups @ values
        if squares:
            np.square(values, out=values)
            sq += groups @ values
    return ClassMoments(np.bincount(ids, minlength=n_labels).astype(np.float64), sums, sq, shift)


def anova_f(counts: np.ndarray, sums: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """One-way ANOVA F per neuron from per-group counts [G], sums [G, D] and sums of squares [G, D].

    Same statistic as scikit-learn's ``f_classif`` (groups with no member are ignored). NaN when the neuron
    does not vary at all, +inf when it varies only between groups.
    """
    present = counts > 0
    counts, sums, squares = counts[present], sums[present], squares[present]
    n, k = counts.sum(), len(counts)
    if k < 2 or n <= k:
        return np.full(sums.shape[1], np.nan)
    total = sums.sum(axis=0)
    between = (sums**2 / counts[:, None]).sum(axis=0) - total**2 / n
    within = (squares - sums**2 / counts[:, None]).sum(axis=0)
    between, within = np.maximum(between, 0.0), np.maximum(within, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (between / (k - 1)) / (within / (n - k))


def one_vs_rest_f(moments: ClassMoments, label: int) -> np.ndarray:
    """F statistic of every neuron for the binary label ``label`` vs all other labelled words."""
    total_n, total_s, total_q = moments.counts.sum(), moments.sums.sum(0), moments.squares.sum(0)
    counts = np.array([moments.counts[label], total_n - moments.counts[label]])
    sums = np.stack([moments.sums[label], total_s - moments.sums[label]])
    squares = np.stack([moments.squares[label], total_q - moments.squares[label]])
    return anova_f(counts, sums, squares)


def _check_names(label_names) -> list[str]:
    label_names = list(label_names)
    if label_names != sorted(label_names):
        raise ValueError("label_names must be sorted so label ids are deterministic")
    return label_names


def anova_ranking(features: Features, labels, label_names, rows=None, batch_size: int | None = None) -> Ranking:
    """Neurons by descending ANOVA F against the labels; per label, the one-vs-rest F.

    Pass the training rows as ``rows`` (methods.md: computed on the training split only); default: every
    labelled word. Constant neurons (NaN F) go last.
    """
    label_names = _check_names(label_names)
    moments = class_moments(features, labels, len(label_names), rows, batch_size=batch_size)
    scores = anova_f(moments.counts, moments.sums, moments.squares)
    per_label = {}
    for label, name in enumerate(label_names):
        if 0 < moments.counts[label] < moments.counts.sum():
            per_label[name] = order_by_score(one_vs_rest_f(moments, label))
    return Ranking(
        method="univariate_anova",
        neuron_ids=list(features.neuron_ids),
        order=order_by_score(scores),
        scores=scores,
        per_label=per_label,
        params={"statistic": "anova_f", "n_rows": int(moments.counts.sum()),
                "class_counts": {name: int(c) for name, c in zip(label_names, moments.counts)}},
    )


def mutual_info_ranking(features: Features, labels, label_names, rows=None, seed: int = 0,
                        max_rows: int = 20000, n_neighbors: int = 3, per_label: bool = True,
                        max_bytes: int = 128 << 20) -> Ranking:
    """Neurons by descending mutual information with the labels (``mutual_info_classif``, seeded).

    Mutual information is estimated with nearest neighbours per neuron and has no streamed form: the chosen
    rows (a seeded subsample of at most ``max_rows``; reported in params) are read in column blocks. The
    one-vs-rest per-label rankings cost one more estimate per label; turn them off with ``per_label=False``.
    """
    from sklearn.feature_selection import mutual_info_classif

    from .stats import column_blocks

    label_names = _check_names(label_names)
    rows, ids = labelled_rows(labels, len(features), len(label_names), rows)
    if len(rows) > max_rows:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
        rows, ids = rows[pick], ids[pick]
    width = features.shape[1]
    scores = np.zeros(width)
    label_scores = {name: np.zeros(width) for i, name in enumerate(label_names)
                    if per_label and 0 < np.sum(ids == i) < len(ids)}
    for start, stop, block in column_blocks(features, rows, max_bytes=max_bytes):
        scores[start:stop] = mutual_info_classif(block, ids, n_neighbors=n_neighbors, random_state=seed)
        for name, values in label_scores.items():
            binary = (ids == label_names.index(name)).astype(np.int64)
            values[start:stop] = mutual_info_classif(block, binary, n_neighbors=n_neighbors, random_state=seed)
    return Ranking(
        method="univariate_mutual_info",
        neuron_ids=list(features.neuron_ids),
        order=order_by_score(scores),
        scores=scores,
        per_label={name: order_by_score(values) for name, values in label_scores.items()},
        params={"statistic": "mutual_info", "n_rows": int(len(rows)), "max_rows": max_rows, "seed": seed,
                "n_neighbors": n_neighbors},
    )


def univariate_ranking(features: Features, labels, label_names, rows=None, method: str = "anova",
                       **options) -> Ranking:
    """Dispatch: ``method`` is ``"anova"`` (default) or ``"mutual_info"``."""
    if method == "anova":
        return anova_ranking(features, labels, label_names, rows, **options)
    if method == "mutual_info":
        return mutual_info_ranking(features, labels, label_names, rows, **options)
    raise ValueError(f"unknown univariate method {method!r}: use 'anova' or 'mutual_info'")
