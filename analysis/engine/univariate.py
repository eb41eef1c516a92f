"""Univariate feature selection (methods.md §2.2): ANOVA F per neuron, mutual information as an option.

Deviation from calling ``sklearn.feature_selection.f_classif`` directly: that needs the whole matrix in memory.
We stream rows in batches and accumulate per-class counts, sums and sums of squares
(:func:`moments.class_moments`), and compute the same F statistic from them; the tests check equality with
scikit-learn. Mutual information is binned (quantile bins per unit) and reads
the chosen rows column block by column block. Progress: rows for ANOVA, neurons (per column block) for mutual
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


def quantile_bins(block: np.ndarray, n_bins: int) -> np.ndarray:
    """int64 bin of every value of ``block`` [n, w], per column: ``n_bins`` equal-frequency bins (quantile edges).

    Tied values always share a bin (edges are compared with ``side="right"``), so a unit with few distinct
    values simply uses fewer bins; a constant unit lands in one bin and has zero information."""
    edges = np.quantile(block, np.linspace(0, 1, n_bins + 1)[1:-1], axis=0).T  # [w, n_bins-1]
    bins = np.empty(block.shape, dtype=np.int64)
    for j in range(block.shape[1]):
        bins[:, j] = np.searchsorted(edges[j], block[:, j], side="right")
    return bins


def _plug_in_mi(joint: np.ndarray) -> np.ndarray:
    """Σ p(b,c) log(p(b,c) / (p(b) p(c))) in nats, per leading index of ``joint`` [w, B, C] (counts)."""
    n = joint.sum(axis=(1, 2), keepdims=True)
    p_joint = joint / n
    p_bin = p_joint.sum(axis=2, keepdims=True)
    p_label = p_joint.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(joint > 0, p_joint * np.log(p_joint / (p_bin * p_label)), 0.0)
    return np.maximum(terms.sum(axis=(1, 2)), 0.0)


def binned_mutual_information(block: np.ndarray, ids: np.ndarray, n_labels: int, n_bins: int = 16,
                              labels_vs_rest=()) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Plug-in MI (nats) between each column's quantile bin and the label id, and per label t in
    ``labels_vs_rest`` between the bin and the binary "t vs the rest" — all from one joint count table
    [w, n_bins, n_labels] made by a single ``bincount``."""
    width = block.shape[1]
    cells = (np.arange(width) * n_bins + quantile_bins(block, n_bins)) * n_labels + ids[:, None]
    joint = np.bincount(cells.ravel(), minlength=width * n_bins * n_labels).reshape(width, n_bins, n_labels)
    del cells
    joint = joint.astype(np.float64)
    per_label = {}
    for t in labels_vs_rest:
        on_label = joint[:, :, t]
        per_label[t] = _plug_in_mi(np.stack([on_label, joint.sum(axis=2) - on_label], axis=2))
    return _plug_in_mi(joint), per_label


def mutual_info_ranking(features: Features, labels, label_names, rows=None, seed: int = 0,
                        max_rows: int | None = None, n_bins: int = 16, per_label: bool = True,
                        block_units: int = 64, max_bytes: int = 128 << 20, job: Job | None = None) -> Ranking:
    """Neurons by descending mutual information with the labels: binned (discrete) plug-in estimate.

    Each neuron's activation over the chosen rows is cut into ``n_bins`` equal-frequency bins (its own
    quantiles), and MI is computed from the bin × label contingency table (:func:`binned_mutual_information`),
    vectorised over a block of units with one ``bincount``. The estimate's bias, about (B−1)(C−1)/(2N) nats,
    is the same for every unit that uses all its bins, so it does not reorder them; it is not subtracted.
    We do not use scikit-learn's nearest-neighbour estimator: it needs a k-d tree per unit and did not finish
    one MiniLM layer in 200 s. Per-label scores (one vs rest) come from the same table at no extra read.
    ``max_rows``: a seeded subsample of the rows (default: all). Progress in neurons, one report per block of
    at most ``block_units`` units.
    """
    job = as_job(job)
    label_names = list(label_names)
    labels = check_labels(labels, label_names, len(features))
    rows = require_labelled_rows(labels, rows)
    if max_rows is not None and len(rows) > max_rows:
        rows = rows[np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))]
    ids = labels[rows].astype(np.int64)
    counts = np.bincount(ids, minlength=len(label_names))
    width = features.shape[1]
    scores = np.zeros(width)
    vs_rest = [i for i in range(len(label_names)) if per_label and 0 < counts[i] < len(ids)]
    label_scores = {label_names[i]: np.zeros(width) for i in vs_rest}
    # the float32 block, its int64 bins and cell ids: about 20 bytes per value
    budget = min(max_bytes, block_units * 20 * len(rows))
    for start, stop, block in column_blocks(features, rows, max_bytes=budget, column_bytes=20 * len(rows)):
        scores[start:stop], per = binned_mutual_information(block, ids, len(label_names), n_bins, vs_rest)
        for i, values in per.items():
            label_scores[label_names[i]][start:stop] = values
        job.progress(stop, width, "neurons")
        job.check_cancelled()
    return ranking_from_scores("mutual_info", features.neuron_ids, scores, label_scores, params={
        "statistic": "mutual_info", "estimator": "quantile-binned plug-in (nats)", "n_bins": n_bins,
        "n_rows": int(len(rows)), "max_rows": max_rows, "seed": seed,
    })
