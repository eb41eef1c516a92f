"""Linguistic correlation analysis (methods.md §2.1): rank neurons by the weights of an elastic-net probe.

- **Weight-mass selection** at mass ``p``: for class c, sort |W[c]| descending (ties: neuron id) and take the
  shortest prefix whose sum reaches ``p · Σ|W[c]|``; the top set is the union over classes.
- **Global ordering**: sweep p over ``mass_steps`` equal steps in (0, 1]; neurons are appended in the order they
  first enter the union, ties within a step broken by max_c |W[c, n]| (descending), then by neuron id. A neuron
  with zero weight for every class never enters and is placed last (same tie-breaks).
- **Per-label sub-ranking**: the class's own |W[c]| order.
- ``Ranking.scores`` = 1 − (the smallest weight mass at which the neuron enters some class's prefix), the
  continuous version of the ordering (higher = earlier); ``Ranking.order`` is the step-quantised ordering above.
- **Control task** (Hewitt & Liang): every word *type* (exact form, case-sensitive) gets one fixed label drawn
  (seeded) from the empirical label distribution of the labelled words; the same probe (same settings, and the
  L2 strength chosen for the real task, so both probes have the same capacity) is trained on these labels;
  selectivity = task test accuracy − control test accuracy.

Weights are those of the *standardised* inputs (see :mod:`probe`), so magnitudes are comparable across neurons.

How concentrated the weights are depends on λ1 (subgradient steps with Adam, so no exact zeros). The default
:data:`DEFAULT_L1` = 1e-3 makes the per-label counts readable; on MiniLM layer 3, UPOS (benchmarks/bench_lca.py):
at 50 % of weight mass PUNCT 28, DET 24, ADP 33, CCONJ 14, PRON 28 neurons vs NOUN 45, VERB 37, ADJ 42 (at 10 % and
30 % closed-class labels still need fewer on average, ADP tying the smallest open class), held-out accuracy 93.7 %
vs 94.2 %. The dense setting :data:`DENSE_L1` = 1e-5 (method ``lca_dense``) spreads weight evenly: 87–98 neurons
at 50 % for every one of those labels.

A proximal L1 step (``l1_step="proximal"``, passed through to :func:`probe.train_probe`) soft-thresholds the
weights after every Adam step instead of adding the L1 subgradient, so weights become exactly zero (58 % of
them at the default λ1 on MiniLM layer 3). It was tried as the default and not chosen (benchmarks/bench_lca.py):
the per-label counts move by at most one neuron (at 10 % mass ADP still ties the smallest open class, 5 vs
VERB/ADJ 5; at 30 % closed-class labels then need fewer, 16 vs 17) and held-out accuracy stays at 93.6 %; a
smaller λ1 (3e-4) recovers 94.2 % but loses the contrast at every mass, a larger one (3e-3) costs 2 points and
still ties at 10 %.

Job contract: progress in epochs over every probe fit, the control probe's included (:func:`planned_epochs`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .features import Features
from .jobs import Job, as_job
from .probe import LabelledWords, Probe, evaluate_on, train_probe
from .probe import planned_epochs as probe_epochs
from .ranking import Ranking

# λ1 of the LCA probe. The readable default concentrates each label's weight on the neurons that carry it, so the
# per-label counts of methods.md §7 can be read (closed-class labels need fewer neurons than open-class ones);
# the dense setting (the probe's own default, as published) spreads weight over every neuron.
DEFAULT_L1 = 1e-3
DENSE_L1 = 1e-5
DEFAULT_MASS_STEPS = 1000
DEFAULT_REPORT_MASSES = (0.1, 0.3, 0.5)  # neurons needed per label at these masses go into the metrics


def _weights(weights_or_probe) -> np.ndarray:
    """Accept a weight matrix [C, D] or a trained Probe."""
    weights = np.asarray(getattr(weights_or_probe, "weight", weights_or_probe), dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(f"expected a weight matrix [classes, neurons], got shape {weights.shape}")
    return weights


def _class_orders(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class: neuron positions by |W[c]| descending (ties: id), and the cumulative mass fraction of that order."""
    magnitude = np.abs(_weights(weights))
    n_classes, n_neurons = magnitude.shape
    orders = np.empty((n_classes, n_neurons), dtype=np.int64)
    cumulative = np.empty((n_classes, n_neurons), dtype=np.float64)
    ids = np.arange(n_neurons)
    for c in range(n_classes):
        orders[c] = np.lexsort((ids, -magnitude[c]))
        total = magnitude[c].sum()
        cumulative[c] = np.cumsum(magnitude[c, orders[c]]) / total if total > 0 else np.ones(n_neurons)
    return orders, cumulative


def neurons_needed(weights, mass: float) -> np.ndarray:
    """Per class, the length of the shortest |W[c]| prefix reaching ``mass`` of the class's total weight.

    ``weights``: [C, D] or a Probe."""
    if not 0 <= mass <= 1:
        raise ValueError(f"mass must be in [0, 1], got {mass}")
    _, cumulative = _class_orders(weights)
    if mass == 0:
        return np.zeros(len(cumulative), dtype=np.int64)
    # small tolerance: a cumulative sum of floats may end a hair below 1
    return np.array([min(int(np.searchsorted(row, mass - 1e-12, side="left")) + 1, len(row)) for row in cumulative])


def top_neurons_at_mass(weights, mass: float, per_class: bool = False):
    """Neuron positions selected at weight mass ``mass``: the union over classes (sorted), or with ``per_class``
    a list with each class's own prefix (best first). ``weights``: [C, D] or a Probe."""
    orders, _ = _class_orders(weights)
    counts = neurons_needed(weights, mass)
    prefixes = [orders[c, : counts[c]] for c in range(len(orders))]
    if per_class:
        return prefixes
    return np.unique(np.concatenate(prefixes)) if prefixes else np.zeros(0, dtype=np.int64)


def weight_mass_ordering(weights: np.ndarray, mass_steps: int = DEFAULT_MASS_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """The global LCA ordering: ``(order, entry_mass)``.

    ``entry_mass[n]`` is the smallest mass at which neuron n belongs to some class's prefix (1.0 never: a neuron
    with no weight anywhere gets 1.0 and goes last). See the module docstring for the tie-breaks.
    """
    if mass_steps < 1:
        raise ValueError("mass_steps must be ≥ 1")
    weights = _weights(weights)
    magnitude = np.abs(weights)
    orders, cumulative = _class_orders(weights)
    n_classes, n_neurons = magnitude.shape
    entry = np.ones((n_classes, n_neurons))
    for c in range(n_classes):
        # the mass already covered before a neuron is what p must exceed for the neuron to be needed
        before = np.r_[0.0, cumulative[c, :-1]]
        before[magnitude[c, orders[c]] == 0] = 1.0  # zero weight: never needed for this class
        entry[c, orders[c]] = before
    entry_mass = entry.min(axis=0) if n_classes else np.ones(n_neurons)
    # first step s (mass s / mass_steps) with s / mass_steps > entry_mass; a neuron never needed gets steps + 1
    entry_step = np.where(entry_mass >= 1.0 - 1e-12, mass_steps + 1, np.floor(entry_mass * mass_steps + 1e-9) + 1)
    strongest = magnitude.max(axis=0) if n_classes else np.zeros(n_neurons)
    order = np.lexsort((np.arange(n_neurons), -strongest, entry_step))
    return order, entry_mass


def ranking_from_probe(
    probe: Probe,
    *,
    mass_steps: int = DEFAULT_MASS_STEPS,
    report_masses: Sequence[float] = DEFAULT_REPORT_MASSES,
    method: str = "lca",
) -> Ranking:
    """A :class:`Ranking` from a trained probe's weights (no training)."""
    order, entry_mass = weight_mass_ordering(probe.weight, mass_steps)
    class_orders, _ = _class_orders(probe.weight)
    metrics = dict(probe.metrics)
    metrics["neurons_per_label_at_mass"] = {
        repr(float(mass)): {
            label: int(count) for label, count in zip(probe.label_names, neurons_needed(probe.weight, mass))
        }
        for mass in report_masses
    }
    return Ranking(
        method=method,
        neuron_ids=list(probe.neuron_ids),
        order=order,
        scores=1.0 - entry_mass,
        per_label={label: class_orders[c] for c, label in enumerate(probe.label_names)},
        params={**probe.params, "mass_steps": mass_steps, "weights": "|W| of standardised inputs"},
        metrics=metrics,
    )


def control_labels(words: Sequence[str], labels, n_classes: int, seed: int = 0) -> np.ndarray:
    """Hewitt & Liang control task: one fixed random label per word type, drawn from the empirical label
    distribution of the labelled words. Words whose real label is missing (-1) stay missing."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(words) != len(labels):
        raise ValueError(f"{len(words)} words but {len(labels)} labels")
    known = labels >= 0
    if not known.any():
        raise ValueError("no labelled words to take a label distribution from")
    distribution = np.bincount(labels[known], minlength=n_classes) / known.sum()
    types, type_of_word = np.unique(np.asarray(words, dtype=object).astype(str), return_inverse=True)
    type_labels = np.random.default_rng(seed).choice(n_classes, size=len(types), p=distribution)
    return np.where(known, type_labels[type_of_word], -1)


def planned_epochs(control: bool = False, **probe_options) -> int:
    """Epochs :func:`linguistic_correlation` runs: the task probe's, plus one fit at its chosen L2 for control."""
    task = probe_epochs(**probe_options)
    return task + (probe_epochs(**{**probe_options, "l2": 0.0}) if control else 0)


def linguistic_correlation(
    features: Features,
    labels,
    *,
    label_names: Sequence[str],
    train,
    dev=None,
    test=None,
    control: bool = False,
    words: Sequence[str] | None = None,
    mass_steps: int = DEFAULT_MASS_STEPS,
    report_masses: Sequence[float] = DEFAULT_REPORT_MASSES,
    seed: int = 0,
    return_probe: bool = False,
    held_out: LabelledWords | None = None,
    job: Job | None = None,
    method: str = "lca",
    **probe_options,
):
    """Train the probe (:func:`probe.train_probe`, options passed through) and rank the neurons by weight mass.

    With ``control=True`` (needs ``words``, one per row of ``features``) a control probe is trained too and
    ``metrics`` gains ``control_test_accuracy`` and ``selectivity``. With ``held_out`` (words of another corpus)
    ``metrics["held_out"]`` is the probe's accuracy there (:func:`probe.evaluate_on`, labels matched by name).
    Returns the Ranking, or ``(ranking, probe)`` with ``return_probe``. ``l1`` defaults to :data:`DEFAULT_L1`
    (pass ``l1=DENSE_L1`` for the dense setting, or use method ``lca_dense``).
    """
    if probe_options.get("l1") is None:
        probe_options["l1"] = DEFAULT_L1
    if control and words is None:
        raise ValueError("the control task needs the words (one per feature row) to assign labels per word type")
    job = as_job(job)
    total = planned_epochs(control=control, **probe_options)
    task_epochs = probe_epochs(**probe_options)
    probe = train_probe(
        features, labels, label_names=label_names, train=train, dev=dev, test=test, seed=seed,
        job=job.part(0, total), **probe_options,
    )  # fmt: skip
    ranking = ranking_from_probe(probe, mass_steps=mass_steps, report_masses=report_masses, method=method)
    if held_out is not None:
        ranking.metrics["held_out"] = evaluate_on(probe, held_out)
    if control:
        fake = control_labels(words, labels, len(label_names), seed=seed)
        options = {**probe_options, "l2": probe.params["l2"]}  # the task probe's capacity
        refitted = probe.params.get("refit_on_train_and_dev")
        train_rows = np.concatenate([np.asarray(train), np.asarray(dev)]) if refitted else train
        job.log(f"control task: {len(set(map(str, words)))} word types with random labels")
        control_probe = train_probe(
            features, fake, label_names=label_names, train=train_rows, test=test, seed=seed,
            job=job.part(task_epochs, total), **options,
        )  # fmt: skip
        task_accuracy = probe.metrics.get("test_accuracy")
        control_accuracy = control_probe.metrics.get("test_accuracy")
        ranking.metrics["control_test_accuracy"] = control_accuracy
        ranking.metrics["control_train_accuracy"] = control_probe.metrics.get("train_accuracy")
        ranking.metrics["selectivity"] = (
            None if task_accuracy is None or control_accuracy is None else task_accuracy - control_accuracy
        )
        ranking.params["control_task"] = {"seed": seed, "word_type": "exact form"}
    return (ranking, probe) if return_probe else ranking
