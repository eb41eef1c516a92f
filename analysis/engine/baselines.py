"""Binary-concept average precision (methods.md §2.5) and the cheap sanity baselines (§2.6).

* :func:`binary_concept_ranking` ranks neurons by the average precision of their raw activation as a detector
  of a binary concept (a boolean mask over words, or one label vs the rest). Both directions are tried (high
  activation = concept, and low activation = concept); the score is the better AP and ``params["sign"]``
  says which (+1 / −1). The input is never modified (NeuroX's IoU probe mutated it). AP is exact and equals
  scikit-learn's ``average_precision_score`` including ties; it needs whole columns, so it reads the chosen
  rows in column blocks bounded by ``max_bytes``.
* :func:`variance_ranking`: activation variance. :func:`mean_difference_ranking`: per label t, |μ_t − μ|
  with μ the mean over all labelled words; overall score Σ_t |μ_t − μ| (our choice of how to combine labels:
  the sum, like the probeless score). Like probeless it has a standardised variant (the default, method
  ``mean_difference``: distances in units of each neuron's std over the chosen rows) and the raw one
  (``mean_difference_raw``), see :mod:`probeless`.
"""

from __future__ import annotations

import numpy as np

from .features import Features, column_blocks
from .jobs import Job, as_job
from .labels import check_labels, require_labelled_rows
from .moments import column_moments, labelled_class_moments, pooled_std, scale_free
from .ranking import Ranking, ranking_from_scores


def _average_precision_sorted(ranked_values: np.ndarray, hits: np.ndarray, n_positive: int) -> np.ndarray:
    """AP per column, given each column's values sorted best first and whether each is a positive."""
    true_positives = np.cumsum(hits, axis=0, dtype=np.int64)
    group_end = np.ones(ranked_values.shape, dtype=bool)
    group_end[:-1] = ranked_values[:-1] != ranked_values[1:]
    tp_at_ends = np.where(group_end, true_positives, 0)
    previous_end = np.zeros_like(tp_at_ends)
    previous_end[1:] = np.maximum.accumulate(tp_at_ends, axis=0)[:-1]
    gained = np.where(group_end, true_positives - previous_end, 0)
    precision = true_positives / np.arange(1, len(ranked_values) + 1)[:, None]
    return (gained * precision).sum(axis=0) / n_positive


def average_precision_columns(values: np.ndarray, positive: np.ndarray, both_directions: bool = False):
    """AP of each column of ``values`` [n, w] as a score for the boolean ``positive`` [n].

    Tied values form one threshold (as in scikit-learn): precision is taken at the end of each tie group and
    weighted by the positives inside the group. With ``both_directions``, also the AP of ``-values``, from
    the same sort read backwards (a tie group is the same set of words in either direction), as a pair.
    """
    n_positive = int(positive.sum())
    if n_positive == 0:
        nan = np.full(values.shape[1], np.nan)
        return (nan, nan.copy()) if both_directions else nan
    order = np.argsort(-values, axis=0, kind="stable")
    ranked_values = np.take_along_axis(values, order, axis=0)
    hits = positive[order]
    del order
    high = _average_precision_sorted(ranked_values, hits, n_positive)
    if not both_directions:
        return high
    return high, _average_precision_sorted(ranked_values[::-1], hits[::-1], n_positive)


def concept_mask(labels=None, label_names=None, positive=None, n_words: int | None = None) -> np.ndarray:
    """A boolean concept over words: ``positive`` as a mask, or the label name ``positive`` vs the rest."""
    if positive is None:
        raise ValueError("give the concept: a boolean mask over words, or a label name (one label vs rest)")
    if isinstance(positive, str):
        if labels is None or label_names is None:
            raise ValueError("a label-name concept needs labels and label_names")
        names = list(label_names)
        if positive not in names:
            raise ValueError(f"unknown label {positive!r}; known labels: {', '.join(names)}")
        return np.asarray(labels) == names.index(positive)
    mask = np.asarray(positive)
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("a concept mask must be boolean (or 0/1)")
        mask = mask.astype(bool)
    if n_words is not None and mask.shape != (n_words,):
        raise ValueError(f"concept mask has shape {mask.shape}, expected ({n_words},)")
    return mask


def binary_concept_ranking(features: Features, positive, labels=None, label_names=None, rows=None,
                           max_bytes: int = 256 << 20, job: Job | None = None) -> Ranking:
    """Neurons by average precision as detectors of a binary concept (see the module docstring).

    With ``labels``, words whose label is missing (-1) are left out; ``rows`` restricts (and may repeat) words.
    ``job``: progress in neurons, one report and a cancellation check per column block.
    """
    job = as_job(job)
    n_words = len(features)
    mask = concept_mask(labels, label_names, positive, n_words)
    if labels is not None:
        names = list(label_names) if label_names is not None else [str(i) for i in range(int(np.max(labels)) + 1)]
        rows = require_labelled_rows(check_labels(labels, names, n_words), rows)
    else:
        rows = np.arange(n_words) if rows is None else np.asarray(rows, dtype=np.int64)
    target = mask[rows]
    if target.all() or not target.any():
        raise ValueError("the concept needs both positive and negative words among the chosen rows")
    width = features.shape[1]
    ap_high, ap_low = np.zeros(width), np.zeros(width)
    # argsort, cumulative sums and masks need about 40 bytes per value on top of the float32 block
    for start, stop, block in column_blocks(features, rows, max_bytes=max(1, max_bytes // 10)):
        ap_high[start:stop], ap_low[start:stop] = average_precision_columns(block, target, both_directions=True)
        job.progress(stop, width, "neurons")
        job.check_cancelled()
    sign = np.where(ap_low > ap_high, -1, 1)
    scores = np.maximum(ap_high, ap_low)
    name = positive if isinstance(positive, str) else "concept"
    return ranking_from_scores("binary_concept_ap", features.neuron_ids, scores, {name: scores}, params={
        "concept": name, "n_rows": int(len(rows)), "n_positive": int(target.sum()),
        "chance_ap": float(target.mean()), "sign": [int(s) for s in sign],
    })


def variance_ranking(features: Features, rows=None, batch_size: int | None = None, job: Job | None = None) -> Ranking:
    """Neurons by descending activation variance (population variance over the chosen rows)."""
    rows = np.arange(len(features)) if rows is None else np.asarray(rows, dtype=np.int64)
    _, variance = column_moments(features, rows, batch_size, job)
    return ranking_from_scores("variance", features.neuron_ids, variance, params={"n_rows": int(len(rows))})


def mean_difference_ranking(features: Features, labels, label_names, rows=None, batch_size: int | None = None,
                            standardise: bool = True, job: Job | None = None) -> Ranking:
    """Per label t, neurons by |μ_t − μ| (μ: mean over labelled words); overall by Σ_t |μ_t − μ|.

    ``standardise``: the same on z-scored activations (distances divided by each neuron's std)."""
    label_names = list(label_names)
    moments = labelled_class_moments(features, labels, label_names, rows, squares=standardise,
                                     batch_size=batch_size, job=job)
    present = np.flatnonzero(moments.present)
    overall = moments.sums.sum(axis=0) / moments.counts.sum()
    distances = np.abs(moments.sums[present] / moments.counts[present, None] - overall)
    if standardise:
        distances = scale_free(distances, pooled_std(moments))
    per_label = {label_names[label]: distances[i] for i, label in enumerate(present)}
    name = "mean_difference" if standardise else "mean_difference_raw"
    return ranking_from_scores(name, features.neuron_ids, distances.sum(axis=0), per_label,
                               params={"n_rows": int(moments.counts.sum()),
                                       "activations": "standardised" if standardise else "raw"})
