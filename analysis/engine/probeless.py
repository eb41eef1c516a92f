"""Probeless ranking (Antverg & Belinkov; methods.md §2.3): differences between class means, no training.

One streaming pass gives the class means μ_c of every neuron. Overall score Σ_{a<b} |μ_a − μ_b|; per label t,
Σ_{c≠t} |μ_t − μ_c|. Only labels that occur in the chosen rows take part (a label with no word has no mean).
"""

from __future__ import annotations

import numpy as np

from .features import Features
from .jobs import Job
from .moments import labelled_class_moments
from .ranking import Ranking, ranking_from_scores


def pairwise_mean_distance(means: np.ndarray) -> np.ndarray:
    """Σ_{a<b} |μ_a − μ_b| per column of ``means`` [C, D], in O(C log C) per column.

    With the class means sorted ascending, μ_(i) appears with sign + against the i smaller ones and with
    sign − against the C−1−i larger ones, so the sum is Σ_i (2i − C + 1) μ_(i).
    """
    ordered = np.sort(means, axis=0)
    n = ordered.shape[0]
    weights = 2 * np.arange(n) - n + 1
    return weights @ ordered


def probeless_ranking(features: Features, labels, label_names, rows=None, batch_size: int | None = None,
                      job: Job | None = None) -> Ranking:
    label_names = list(label_names)
    moments = labelled_class_moments(features, labels, label_names, rows, squares=False, batch_size=batch_size,
                                     job=job)
    present = np.flatnonzero(moments.present)
    # differences of means do not depend on the shift, so work with the shifted sums
    means = moments.sums[present] / moments.counts[present, None]
    per_label = {label_names[label]: np.abs(means - means[position]).sum(axis=0)
                 for position, label in enumerate(present)}
    return ranking_from_scores("probeless", features.neuron_ids, pairwise_mean_distance(means), per_label, params={
        "n_rows": int(moments.counts.sum()), "labels_present": [label_names[i] for i in present],
    })
