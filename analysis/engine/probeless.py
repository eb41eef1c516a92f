"""Probeless ranking (Antverg & Belinkov; methods.md §2.3): differences between class means, no training.

One streaming pass gives the class means μ_c of every neuron. Overall score Σ_{a<b} |μ_a − μ_b|; per label t,
Σ_{c≠t} |μ_t − μ_c|. Only labels that occur in the chosen rows take part (a label with no word has no mean).

Two variants (methods.md §2.3): ``standardise=True`` (the platform's default, method ``probeless``) takes the class
means of z-scored activations, z = (a − m)/s with m, s the mean and population std over the chosen rows, so a
unit's scale does not decide its rank; ``standardise=False`` (method ``probeless_raw``) is the published score
on raw activations, which follows each unit's variance. Since μ_a(z) − μ_b(z) = (μ_a − μ_b)/s, the standardised
scores are the raw ones divided by s, from the same single pass (it also sums squares). A constant unit scores 0.
"""

from __future__ import annotations

import numpy as np

from .features import Features
from .jobs import Job
from .moments import labelled_class_moments, pooled_std, scale_free
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
                      standardise: bool = True, job: Job | None = None) -> Ranking:
    label_names = list(label_names)
    moments = labelled_class_moments(features, labels, label_names, rows, squares=standardise,
                                     batch_size=batch_size, job=job)
    present = np.flatnonzero(moments.present)
    # differences of means do not depend on the shift, so work with the shifted sums
    means = moments.sums[present] / moments.counts[present, None]
    if standardise:
        means = scale_free(means, pooled_std(moments))
    per_label = {label_names[label]: np.abs(means - means[position]).sum(axis=0)
                 for position, label in enumerate(present)}
    name = "probeless" if standardise else "probeless_raw"
    return ranking_from_scores(name, features.neuron_ids, pairwise_mean_distance(means), per_label, params={
        "n_rows": int(moments.counts.sum()), "labels_present": [label_names[i] for i in present],
        "activations": "standardised" if standardise else "raw",
    })
