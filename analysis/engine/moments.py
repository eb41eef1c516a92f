"""Streamed moments of activation columns, the statistics every method below builds on.

* :func:`column_moments`: mean and population variance of every neuron over chosen rows (probe standardisation,
  cross-model correlations, the variance baseline).
* :func:`class_moments`: per-label counts, sums and sums of squares (ANOVA, probeless, mean difference).

Rows are read in batches (``Features.rows``), so memory does not grow with the corpus. Sums are accumulated in
float64 on values shifted by a per-neuron reference (:func:`reference_values`), so the subtraction in the
variance does not cancel for neurons with a large offset. Each batch is a chunk of the job contract: progress in
rows, and a cancellation check after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import Features
from .jobs import Job, as_job
from .labels import check_labels, require_labelled_rows

# float64 copies of one batch stay around this size, whatever the width
BATCH_BYTES = 64 << 20


def batch_rows_for(width: int, bytes_per_value: int = 8, budget: int = BATCH_BYTES) -> int:
    """Rows per batch so that one float64 copy of a batch stays near ``budget`` bytes."""
    return int(max(64, min(8192, budget // max(1, width * bytes_per_value))))


def reference_values(features: Features, rows: np.ndarray) -> np.ndarray:
    """A per-neuron shift (median of the first rows) that keeps streamed sums of squares well conditioned.

    A median of identical values is exact, so constant neurons become exactly zero after the shift.
    """
    return np.median(features.rows(np.sort(rows[:256])).astype(np.float64), axis=0)


def indicator(ids: np.ndarray, n_groups: int) -> "scipy.sparse.csr_matrix":  # noqa: F821
    """Sparse [n_groups, len(ids)] 0/1 matrix: ``indicator(ids) @ X`` gives the per-group column sums of X."""
    from scipy import sparse

    return sparse.csr_matrix((np.ones(len(ids)), (ids, np.arange(len(ids)))), shape=(n_groups, len(ids)))


def _shifted_batches(features: Features, rows: np.ndarray, shift: np.ndarray, batch_size: int, job: Job | None):
    """Yield ``(start, float64 rows − shift)`` batch by batch, then report progress and check for a cancel."""
    job = as_job(job)
    for start in range(0, len(rows), batch_size):
        yield start, features.rows(rows[start : start + batch_size]).astype(np.float64) - shift
        job.progress(min(start + batch_size, len(rows)), len(rows), "rows")
        job.check_cancelled()


def column_moments(features: Features, rows=None, batch_size: int | None = None,
                   job: Job | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, population variance)`` of every neuron over ``rows`` (default: every word; repeats count)."""
    rows = np.arange(len(features)) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        raise ValueError("no rows to compute means and variances on")
    shift = reference_values(features, rows)
    sums = np.zeros(features.shape[1])
    squares = np.zeros(features.shape[1])
    batch_size = batch_size or batch_rows_for(features.shape[1])
    for _, values in _shifted_batches(features, rows, shift, batch_size, job):
        sums += values.sum(axis=0)
        squares += np.einsum("ij,ij->j", values, values)
    shifted_mean = sums / len(rows)
    return shifted_mean + shift, np.maximum(squares / len(rows) - shifted_mean**2, 0.0)


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


def class_moments(features: Features, labels: np.ndarray, n_labels: int, rows: np.ndarray, squares: bool = True,
                  batch_size: int | None = None, job: Job | None = None) -> ClassMoments:
    """One streaming pass over ``rows`` (labelled, repeats kept): per-class counts, sums (and sums of squares)
    of every neuron. ``labels``: checked ids (see :func:`labels.check_labels`)."""
    ids = labels[rows]
    width = features.shape[1]
    sums = np.zeros((n_labels, width))
    sq = np.zeros((n_labels, width)) if squares else None
    batch_size = batch_size or batch_rows_for(width)
    shift = reference_values(features, rows)
    for start, values in _shifted_batches(features, rows, shift, batch_size, job):
        groups = indicator(ids[start : start + batch_size], n_labels)
        sums += groups @ values
        if squares:
            np.square(values, out=values)
            sq += groups @ values
    return ClassMoments(np.bincount(ids, minlength=n_labels).astype(np.float64), sums, sq, shift)


def labelled_class_moments(features: Features, labels, label_names, rows=None, squares: bool = True,
                           batch_size: int | None = None, job: Job | None = None) -> ClassMoments:
    """:func:`class_moments` over the labelled words among ``rows`` (default: every word), labels checked first."""
    labels = check_labels(labels, label_names, len(features))
    rows = require_labelled_rows(labels, rows)
    return class_moments(features, labels, len(label_names), rows, squares, batch_size, job)


def pooled_std(moments: ClassMoments) -> np.ndarray:
    """Population std of every neuron over all the rows of ``moments`` (which must hold sums of squares)."""
    n = moments.counts.sum()
    mean = moments.sums.sum(axis=0) / n
    return np.sqrt(np.maximum(moments.squares.sum(axis=0) / n - mean**2, 0.0))


def scale_free(values: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``values / std`` per neuron (last axis), 0 where the neuron is constant."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(std > 0, values / np.where(std > 0, std, 1.0), 0.0)
