"""Univariate feature selection (methods.md §2.2): ANOVA F per neuron, mutual information as an option.

Deviation from calling ``sklearn.feature_selection.f_classif`` directly: that needs the whole matrix in memory.
We stream rows in batches and accumulate per-class counts, sums and sums of squares
(:func:`moments.class_moments`), and compute the same F statistic from them; the tests check equality with
scikit-learn. Mutual information has no streamed form: it reads the chosen rows (a seeded subsample of at most
``max_rows``) column block by column block. Progress: rows for ANOVA, neurons (per column block) for mutual
information.
"""

from __future__ import annotations

import numpy as np

from .features import Features, column_blocks
from .jobs import Job, as_job
from .labels import check_labels, require_labelled_rows
from .moments import ClassMoments, labelled_class_moments
from .ranking import Ranking, ranking_from_scores


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


def anova_ranking(features: Features, labels, label_names, rows=None, batch_size: int | None = None,
                  job: Job | None = None) -> Ranking:
    """Neurons by descending ANOVA F against the labels; per label, the one-vs-rest F.

    Pass the training rows as ``rows`` (methods.md: computed on the training split only); default: every
    labelled word. Constant neurons (NaN F) go last.
    """
    label_names = list(label_names)
    moments = labelled_class_moments(features, labels, label_names, rows, batch_size=batch_size, job=job)
    scores = anova_f(moments.counts, moments.sums, moments.squares)
    per_label = {name: one_vs_rest_f(moments, label) for label, name in enumerate(label_names)
                 if 0 < moments.counts[label] < moments.counts.sum()}
    return ranking_from_scores("anova", features.neuron_ids, scores, per_label, params={
        "statistic": "anova_f", "n_rows": int(moments.counts.sum()),
        "class_counts": {name: int(c) for name, c in zip(label_names, moments.counts)},
    })


def mutual_info_ranking(features: Features, labels, label_names, rows=None, seed: int = 0,
                        max_rows: int = 20000, n_neighbors: int = 3, per_label: bool = True,
                        max_bytes: int = 128 << 20, job: Job | None = None) -> Ranking:
    """Neurons by descending mutual information with the labels (``mutual_info_classif``, seeded).

    Mutual information is estimated with nearest neighbours per neuron and has no streamed form: the chosen
    rows (a seeded subsample of at most ``max_rows``; reported in params) are read in column blocks. The
    one-vs-rest per-label rankings cost one more estimate per label; turn them off with ``per_label=False``.
    """
    from sklearn.feature_selection import mutual_info_classif

    job = as_job(job)
    label_names = list(label_names)
    labels = check_labels(labels, label_names, len(features))
    rows = require_labelled_rows(labels, rows)
    if len(rows) > max_rows:
        rows = rows[np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))]
    ids = labels[rows]
    width = features.shape[1]
    scores = np.zeros(width)
    label_scores = {name: np.zeros(width) for i, name in enumerate(label_names)
                    if per_label and 0 < np.sum(ids == i) < len(ids)}
    for start, stop, block in column_blocks(features, rows, max_bytes=max_bytes):
        scores[start:stop] = mutual_info_classif(block, ids, n_neighbors=n_neighbors, random_state=seed)
        for name, values in label_scores.items():
            binary = (ids == label_names.index(name)).astype(np.int64)
            values[start:stop] = mutual_info_classif(block, binary, n_neighbors=n_neighbors, random_state=seed)
        job.progress(stop, width, "neurons")
        job.check_cancelled()
    return ranking_from_scores("mutual_info", features.neuron_ids, scores, label_scores, params={
        "statistic": "mutual_info", "n_rows": int(len(rows)), "max_rows": max_rows, "seed": seed,
        "n_neighbors": n_neighbors,
    })
