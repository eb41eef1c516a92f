"""Probe-level ablation (methods.md §3): keep only the top / random / bottom k % of the neurons of a ranking.

Two modes:
- ``zero_out``: the trained probe, with every standardised input outside the kept set set to 0 (= its training
  mean), scored on the test rows. No training, so cheap at every point.
- ``retrain``: a new probe trained on the kept neurons only, with the original probe's settings and its (already
  chosen) L2 strength — no new L2 selection, so every point has the same regularisation and costs one fit.

Random selections are drawn for ``random_seeds`` seeds (≥ 5 by default) and reported as mean, std, min and max.
Results are plain dicts ready to draw: x as neurons kept / removed, as counts and percentages.

Every point is scored on the ``test`` rows of the training store, or, with ``held_out``, on the words of another
corpus (labels matched to the probe's by name; see :func:`probe.evaluate_on`). Job contract: progress in
evaluations (one per kept set: top, bottom and each random draw at every point), a cancellation check after each.
:func:`train_and_ablate` trains the lca probe first and counts its epochs and the evaluations as one total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .features import Features
from .jobs import Job, as_job
from .labels import align_labels, check_labels, labelled_rows
from .lca import linguistic_correlation, planned_epochs
from .options import Option
from .probe import LabelledWords, Probe, evaluate_on, evaluate_probe, train_probe
from .splits import Split

DEFAULT_PERCENTS = (5, 10, 15, 20, 30, 50, 75, 100)  # 10, 15, 20 are the published points
DEFAULT_RANDOM_SEEDS = 5
SELECTIONS = ("top", "random", "bottom")
MODES = ("zero_out", "retrain")
TRAIN_AND_ABLATE_UNIT = "probe epochs + evaluations"
# Each point is a probe trained (retrain) or scored (zero_out) per selection, each random seed one more: a curve of
# 50 points is finer than a chart shows, and 50 random sets give a spread as tight as it gets.
MAX_POINTS = 50
MAX_RANDOM_SEEDS = 50
# what a run may set of :func:`train_and_ablate`
OPTIONS = (
    Option("percents", float, DEFAULT_PERCENTS, "the shares of neurons to keep", minimum=0, above_minimum=True,
           maximum=100, many=True, max_count=MAX_POINTS, example="[10, 50]"),
    Option("random_seeds", int, DEFAULT_RANDOM_SEEDS, "how many random neuron sets to compare with", minimum=1,
           maximum=MAX_RANDOM_SEEDS),
    Option("modes", str, MODES, "zero_out scores the trained probe with the other neurons at their mean, retrain "
           "trains a new probe on the kept neurons", choices=MODES, many=True),
)


@dataclass
class ProbeAblation:
    n_neurons: int
    baseline_accuracy: float | None  # the full probe on the test rows
    majority_accuracy: float | None
    points: list[dict] = field(default_factory=list)  # one per (mode, selection, percent)
    params: dict = field(default_factory=dict)

    def curve(self, mode: str, selection: str) -> dict:
        """One line of the chart: lists aligned by point, sorted by neurons kept."""
        points = sorted(
            (p for p in self.points if p["mode"] == mode and p["selection"] == selection), key=lambda p: p["kept"]
        )
        keys = ("kept", "kept_percent", "removed", "removed_percent")
        keys += ("accuracy", "accuracy_std", "accuracy_min", "accuracy_max")
        return {key: [p[key] for p in points] for key in keys}

    def curves(self) -> dict:
        modes = sorted({p["mode"] for p in self.points})
        return {mode: {s: self.curve(mode, s) for s in SELECTIONS} for mode in modes}

    def at(self, mode: str, selection: str, percent: float) -> dict:
        for point in self.points:
            if point["mode"] == mode and point["selection"] == selection and point["percent"] == percent:
                return point
        raise KeyError(f"no point for {mode}/{selection}/{percent}%")

    def to_dict(self) -> dict:
        return {
            "n_neurons": self.n_neurons,
            "baseline_accuracy": self.baseline_accuracy,
            "majority_accuracy": self.majority_accuracy,
            "points": self.points,
            "curves": self.curves(),
            "params": self.params,
        }


def kept_count(n_neurons: int, percent: float) -> int:
    """Neurons kept at ``percent`` %: rounded, at least 1."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    return max(1, min(n_neurons, int(round(n_neurons * percent / 100.0))))


def probe_ablation(
    probe: Probe,
    features: Features,
    labels,
    order: Sequence[int],
    *,
    train,
    test=None,
    held_out: LabelledWords | None = None,
    percents: Sequence[float] = DEFAULT_PERCENTS,
    modes: Sequence[str] = MODES,
    random_seeds: int = DEFAULT_RANDOM_SEEDS,
    seed: int = 0,
    job: Job | None = None,
) -> ProbeAblation:
    """Ablate along ``order`` (positions into the probe's neurons, best first, e.g. ``Ranking.order``).

    ``train`` is used by ``retrain`` (pass the rows the probe was trained on). Every point is scored on the rows
    ``test`` of ``features``, or on ``held_out`` (another corpus's words) when given.
    """
    job = as_job(job)
    order = np.asarray(order, dtype=np.int64)
    n_neurons = len(probe.neuron_ids)
    if sorted(order.tolist()) != list(range(n_neurons)):
        raise ValueError(f"order must be a permutation of the probe's {n_neurons} neuron positions")
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"unknown ablation modes {sorted(unknown)}; choose from {MODES}")
    if random_seeds < 1:
        raise ValueError("random_seeds must be ≥ 1")
    if (test is None) == (held_out is None):
        raise ValueError("score the points on one thing: give either test rows or a held-out corpus")
    labels = check_labels(labels, probe.label_names, len(features))
    if held_out is None:
        baseline = evaluate_probe(probe, features, labels, train=train, test=test)
        baseline_accuracy, majority_accuracy = baseline.get("test_accuracy"), baseline.get("majority_accuracy")
        unknown_labels = None
    else:
        baseline = evaluate_on(probe, held_out)
        baseline_accuracy, unknown_labels = baseline["accuracy"], baseline["unknown_labels"]
        majority_accuracy = _majority_accuracy(probe, labels, train, held_out)

    retrain_options = {
        name: probe.params[name]
        for name in ("l1", "l2", "epochs", "batch_size", "lr", "schedule")
        if name in probe.params
    }
    rng = np.random.default_rng(seed)
    random_sets = {
        percent: [
            np.sort(rng.choice(n_neurons, kept_count(n_neurons, percent), replace=False)) for _ in range(random_seeds)
        ]
        for percent in percents
    }

    def score(mode: str, kept: np.ndarray) -> float:
        if mode == "zero_out":
            if held_out is not None:
                return evaluate_on(probe, held_out, keep=kept)["accuracy"]
            return evaluate_probe(probe, features, labels, test=test, keep=kept)["test_accuracy"]
        retrained = train_probe(
            features.select(kept), labels, label_names=probe.label_names, train=train, test=test,
            seed=probe.params.get("seed", 0), job=job.without_progress(), **retrain_options,
        )  # fmt: skip
        if held_out is not None:
            return evaluate_on(retrained, held_out.select(kept))["accuracy"]
        return retrained.metrics["test_accuracy"]

    tasks = [(mode, percent) for mode in modes for percent in percents]
    total = planned_evaluations(percents, modes, random_seeds)
    done = 0
    result = ProbeAblation(
        n_neurons=n_neurons,
        baseline_accuracy=baseline_accuracy,
        majority_accuracy=majority_accuracy,
        params={
            "percents": list(percents), "modes": list(modes), "random_seeds": random_seeds, "seed": seed,
            "retrain_options": retrain_options, "zero_out": "standardised inputs outside the kept set set to 0",
            "scored_on": "held-out corpus" if held_out is not None else "test rows",
            "unknown_labels": unknown_labels,
        },
    )  # fmt: skip
    for mode, percent in tasks:
        k = kept_count(n_neurons, percent)
        selections = {"top": [order[:k]], "bottom": [order[n_neurons - k :]], "random": random_sets[percent]}
        for selection in SELECTIONS:
            accuracies = []
            for kept in selections[selection]:
                accuracies.append(score(mode, np.sort(kept)))
                done += 1
                job.progress(done, total, "evaluations")
                job.check_cancelled()
            result.points.append(
                {
                    "mode": mode,
                    "selection": selection,
                    "percent": percent,
                    "kept": k,
                    "kept_percent": 100.0 * k / n_neurons,
                    "removed": n_neurons - k,
                    "removed_percent": 100.0 * (n_neurons - k) / n_neurons,
                    "accuracy": float(np.mean(accuracies)),
                    "accuracy_std": float(np.std(accuracies)),
                    "accuracy_min": float(np.min(accuracies)),
                    "accuracy_max": float(np.max(accuracies)),
                    "accuracies": [float(a) for a in accuracies],
                }
            )
        line = ", ".join(f"{p['selection']} {p['accuracy']:.4f}" for p in result.points[-3:])
        job.log(f"{mode} keeping {percent}% ({k} neurons): {line}")
    return result


def _majority_accuracy(probe: Probe, labels: np.ndarray, train, held_out: LabelledWords) -> float | None:
    """Accuracy on the held-out words (labels matched by name) of always answering the most frequent training label."""
    train_truth = labels[labelled_rows(labels, train)]
    aligned, _ = align_labels(held_out.labels, held_out.label_names, probe.label_names)
    truth = aligned[labelled_rows(aligned, held_out.index)]
    if not len(train_truth) or not len(truth):
        return None
    return float(np.mean(truth == np.bincount(train_truth, minlength=probe.n_classes).argmax()))


def planned_evaluations(percents: Sequence[float], modes: Sequence[str], random_seeds: int) -> int:
    """Evaluations :func:`probe_ablation` runs with these arguments: its progress total."""
    return len(modes) * len(percents) * (2 + random_seeds)


def train_and_ablate(
    features: Features,
    labels,
    *,
    label_names: Sequence[str],
    split: Split,
    percents: Sequence[float] = DEFAULT_PERCENTS,
    modes: Sequence[str] = MODES,
    random_seeds: int = DEFAULT_RANDOM_SEEDS,
    seed: int = 0,
    job: Job | None = None,
) -> ProbeAblation:
    """The lca probe trained on ``split`` (as the lca ranking is: train, dev for its L2, test), then ablated
    along its own ranking, every point scored on the test rows. Progress is one count, the probe's epochs then
    the evaluations, whose total is known before the first epoch: a bar never goes back (a probe that stops
    early moves it forward)."""
    job = as_job(job)
    epochs = planned_epochs()
    total = epochs + planned_evaluations(percents, modes, random_seeds)
    job.log("training the lca probe to ablate")
    ranking, probe = linguistic_correlation(
        features, labels, label_names=label_names, train=split.train, dev=split.dev, test=split.test, seed=seed,
        return_probe=True, job=job.part(0, total, TRAIN_AND_ABLATE_UNIT),
    )  # fmt: skip
    return probe_ablation(
        probe, features, labels, ranking.order, train=split.train, test=split.test, percents=percents, modes=modes,
        random_seeds=random_seeds, seed=seed, job=job.part(epochs, total, TRAIN_AND_ABLATE_UNIT),
    )  # fmt: skip
