"""Elastic-net logistic-regression probe (methods.md §2.1), trained in torch on rows streamed from a Features.

Model: logits = z · Wᵀ + b with ``W ∈ R^{C×D}``, ``b`` unpenalised, ``z`` the *standardised* activations
(``(x − mean) / std``, mean and std streamed from the training rows and stored in the probe, so weight magnitudes
are comparable across neurons — the weight-mass ranking of :mod:`lca` depends on that).

Objective (what "applied once per epoch-normalised loss" means here)::

    J(W, b) = mean over training words of CE + λ1·‖W‖₁ + λ2·‖W‖₂²

Each mini-batch step uses the batch-mean cross-entropy plus the full penalty, an unbiased estimate of ``J``, so the
strength of λ does not depend on the batch size or on the corpus size. NeuroX instead added λ2·‖W‖₂ (the
*unsquared* norm) on every mini-batch; its λ values are therefore not interchangeable with ours.

Defaults, and why they differ from the published pipeline (λ1 = λ2 = 1e-5, 10 epochs, batch 512, Adam lr 1e-3,
all still available through the arguments — see :data:`NEUROX_DEFAULTS`): see :data:`DEFAULTS` below.

Memory: training holds at most ``memory_budget_mb`` of standardised float32 feature rows (default 256 MiB), plus
one mini-batch and transient copies while a chunk is read (peak ≈ 2 × the budget). If the training rows fit in
the budget they are read once and kept for all epochs (and all fits of the L2 selection), and each epoch visits
them in a full random permutation; otherwise the rows (in file order) are cut into contiguous budget-sized chunks,
and each epoch shuffles the chunk order and the rows within each chunk, reading one chunk (one sequential read)
just before its mini-batches, so an epoch costs time linear in the corpus size. The two paths see different
mini-batches, so a streamed result differs slightly from an in-memory one (same accuracy within noise). Mean/std are streamed in the same chunks; dev and test rows are scored in batches of ``eval_batch_size``.

Labels are int arrays into ``label_names`` with ``-1`` = missing: such words are dropped from every split. A label
id outside ``[-1, C)`` is an error. A label that occurs in dev/test but never in training is kept (the probe
cannot predict it, so it counts as wrong) and is listed in ``metrics["labels_unseen_in_train"]``.

Evaluation on another corpus (:func:`evaluate_on`, or ``label_names=`` in :func:`evaluate_probe`): that corpus's
store numbers its labels by its own label set, so its labels are first matched to the probe's by name. Words
whose label the probe has no class for are left out of every accuracy and reported in
``metrics["unknown_labels"]`` (label name → words), never scored as some other label.

Job contract: ``train_probe`` reports epochs over all its fits (:func:`planned_epochs` says how many) and checks
for a cancel after every epoch and every chunk of the standardisation pass.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .features import Features
from .jobs import Job, as_job
from .labels import align_labels, check_labels, labelled_rows
from .loading import pick_device
from .moments import column_moments
from .neurons import NeuronId

# Our defaults, chosen on UPOS / UD EWT dev / all-MiniLM-L6-v2 (benchmarks/bench_probe.py):
# - the L2 strength is chosen on the dev split from L2_GRID ("auto"): the best fixed value differs with the number of
#   neurons (≈1e-3 for one 384-unit layer, ≈1e-2 for all 7 layers together) and no single value met both targets;
# - 20 epochs, batch 2048, Adam lr 2e-2 with cosine decay: ~200 steps; fewer, larger batches keep the per-step
#   overhead low on a CPU. Measured (held-out UPOS, first 80 % / last 20 % of sentences): layer 3 94.2 % vs 93.8 %
#   with the published settings, all 7 layers 94.55 % vs 94.4 % (the selection + refit takes ~17 s on one core).
# - batch "auto": 2048, capped so an epoch has at least MIN_STEPS_PER_EPOCH steps (small corpora would otherwise
#   get a handful of steps in total and an under-trained probe).
DEFAULTS = dict(l1=1e-5, l2="auto", epochs=20, batch_size="auto", lr=2e-2, schedule="cosine", l1_step="subgradient")
L2_GRID = (1e-3, 3e-3, 1e-2, 3e-2)
AUTO_BATCH_MAX = 2048
MIN_STEPS_PER_EPOCH = 10
# The published NeuroX pipeline's settings (our penalty normalisation): train_probe(..., **NEUROX_DEFAULTS).
NEUROX_DEFAULTS = dict(l1=1e-5, l2=1e-5, epochs=10, batch_size=512, lr=1e-3, schedule="constant")

SCHEDULES = ("constant", "cosine", "linear")
# How the L1 term is optimised: "subgradient" adds λ1·‖W‖₁ to the loss (Adam never lands on exact zeros);
# "proximal" leaves it out of the loss and soft-thresholds W after every Adam step, each weight by
# lr · λ1 / (√v̂ + ε), Adam's own step size for that weight, so the fixed points are those of the penalised
# objective and weights that the data do not hold away from zero are exactly zero.
L1_STEPS = ("subgradient", "proximal")


@dataclass
class Probe:
    """A trained probe. Arrays are NumPy (float32); ``weight`` acts on standardised inputs."""

    weight: np.ndarray  # [C, D]
    bias: np.ndarray  # [C]
    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]
    label_names: list[str]
    neuron_ids: list[NeuronId]
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def logits(self, rows: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        """Logits for raw activation rows [n, D]. ``keep``: column positions whose standardised input is kept;
        every other standardised input is set to 0 (i.e. to its training mean) — the probe-level "zero-out"."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != len(self.mean):
            raise ValueError(f"expected rows of width {len(self.mean)}, got shape {rows.shape}")
        if keep is None:
            return ((rows - self.mean) / self.std) @ self.weight.T + self.bias
        keep = np.asarray(keep, dtype=np.int64)
        z = (rows[:, keep] - self.mean[keep]) / self.std[keep]
        return z @ self.weight[:, keep].T + self.bias

    def predict(self, rows: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        """Label ids (positions in ``label_names``) for raw activation rows [n, D]."""
        return self.logits(rows, keep).argmax(axis=1)

    def predict_labels(self, rows: np.ndarray) -> list[str]:
        return [self.label_names[i] for i in self.predict(rows)]

    def predict_features(
        self, features: Features, index=None, keep: np.ndarray | None = None, batch_size: int = 8192
    ) -> np.ndarray:
        """Predictions for rows ``index`` of ``features`` (all rows if None), read in batches."""
        self._check_features(features)
        index = np.arange(len(features)) if index is None else np.asarray(index, dtype=np.int64)
        out = np.empty(len(index), dtype=np.int64)
        for start in range(0, len(index), batch_size):
            batch = index[start : start + batch_size]
            out[start : start + len(batch)] = self.predict(features.rows(batch), keep)
        return out

    def _check_features(self, features: Features):
        if len(features.neuron_ids) != len(self.neuron_ids) or list(features.neuron_ids) != list(self.neuron_ids):
            raise ValueError("these features do not have the neurons this probe was trained on")

    # ---- persistence: safetensors for the arrays, JSON for the rest; never pickle -----------------------------

    def save(self, path) -> Path:
        """Write ``probe.safetensors`` and ``probe.json`` into the directory ``path`` (created if needed)."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(
            {
                name: np.ascontiguousarray(getattr(self, name), dtype=np.float32)
                for name in ("weight", "bias", "mean", "std")
            },
            str(path / "probe.safetensors"),
        )
        (path / "probe.json").write_text(
            json.dumps(
                {
                    "format": "neurox-probe/1",
                    "label_names": self.label_names,
                    "neurons": [n.label for n in self.neuron_ids],
                    "params": self.params,
                    "metrics": self.metrics,
                },
                indent=1,
            )
        )
        return path

    @classmethod
    def load(cls, path) -> "Probe":
        from safetensors.numpy import load_file

        path = Path(path)
        meta = json.loads((path / "probe.json").read_text())
        if meta.get("format") != "neurox-probe/1":
            raise ValueError(f"{path}: not a saved probe (format {meta.get('format')!r})")
        arrays = load_file(str(path / "probe.safetensors"))
        probe = cls(
            weight=arrays["weight"],
            bias=arrays["bias"],
            mean=arrays["mean"],
            std=arrays["std"],
            label_names=list(meta["label_names"]),
            neuron_ids=[NeuronId.parse(label) for label in meta["neurons"]],
            params=meta.get("params", {}),
            metrics=meta.get("metrics", {}),
        )
        if probe.weight.shape != (len(probe.label_names), len(probe.neuron_ids)):
            raise ValueError(f"{path}: weight shape {probe.weight.shape} does not match labels × neurons")
        return probe


# ---- training ------------------------------------------------------------------------------------------------


def standardisation(features: Features, index: np.ndarray, chunk_rows: int,
                    job: Job | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the rows ``index`` (repeats count), streamed. Constant columns get std 1."""
    mean, variance = column_moments(features, index, batch_size=chunk_rows, job=job)
    std = np.sqrt(variance)
    std[std < 1e-6 * (1.0 + np.abs(mean))] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def planned_epochs(epochs: int | None = None, l2=None, l2_grid: Sequence[float] = L2_GRID, refit: bool = True,
                   **_other_options) -> int:
    """How many epochs :func:`train_probe` runs with these arguments: its progress total."""
    epochs = DEFAULTS["epochs"] if epochs is None else epochs
    auto = (DEFAULTS["l2"] if l2 is None else l2) == "auto"
    return epochs * ((len(l2_grid) + int(refit)) if auto else 1)


def _learning_rate(schedule: str, base_lr: float, step: int, total_steps: int) -> float:
    if schedule == "constant":
        return base_lr
    progress = step / max(total_steps, 1)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (1.0 - progress)  # linear


class _RowSource:
    """Standardised rows of ``features`` at positions ``index``, as torch tensors, within a memory budget.

    On the CPU the rows are kept as a NumPy array and gathered with NumPy (several times faster than torch's
    advanced indexing on one thread); on a GPU they are kept on the device.
    """

    def __init__(self, features, index, mean, std, chunk_rows, device):
        self.features, self.index, self.chunk_rows, self.device = features, index, chunk_rows, device
        self.mean, self.std = mean, std
        self.on_cpu = device.type == "cpu"
        self.cached = self._read(np.arange(len(index))) if len(index) <= chunk_rows else None
        self._file_chunks = None

    def _read(self, positions):
        import torch

        rows = self.features.rows(self.index[positions])
        if self.on_cpu:
            if not rows.flags.owndata or not rows.flags.writeable:
                rows = rows.copy()  # never standardise a caller's array in place
            rows -= self.mean
            rows /= self.std
            return rows
        rows = torch.from_numpy(rows).to(self.device)
        return (rows - torch.from_numpy(self.mean).to(self.device)) / torch.from_numpy(self.std).to(self.device)

    def _take(self, rows, positions):
        import torch

        if self.on_cpu:
            return torch.from_numpy(rows[positions])
        return rows[torch.from_numpy(positions).to(self.device)]

    def epoch_chunks(self, rng) -> list[np.ndarray]:
        """One epoch's visiting order, as chunks of positions into ``index``.

        Cached rows: one chunk, a full permutation. Streamed rows: the rows in file order cut into contiguous
        budget-sized chunks; the chunk order is shuffled and so are the rows within each chunk, so every chunk is
        one sequential read of the store (a full permutation would touch the whole file once per chunk, which
        makes an epoch quadratic in the corpus size)."""
        if self.cached is not None:
            return [rng.permutation(len(self.index))]
        if self._file_chunks is None:
            in_file_order = np.argsort(self.index, kind="stable")
            self._file_chunks = [in_file_order[start : start + self.chunk_rows]
                                 for start in range(0, len(in_file_order), self.chunk_rows)]
        return [rng.permutation(self._file_chunks[c]) for c in rng.permutation(len(self._file_chunks))]

    def batches(self, chunks, batch_size):
        """Yield ``(positions, standardised rows)`` batch by batch, chunk by chunk; a chunk is read at a time."""
        import torch

        for chunk in chunks:
            if self.cached is not None:
                for start in range(0, len(chunk), batch_size):
                    positions = chunk[start : start + batch_size]
                    yield positions, self._take(self.cached, positions)
                continue
            rows = self._read(chunk)
            if self.on_cpu:
                rows = torch.from_numpy(rows)
            for start in range(0, len(chunk), batch_size):
                yield chunk[start : start + batch_size], rows[start : start + batch_size]


def train_probe(
    features: Features,
    labels,
    *,
    label_names: Sequence[str],
    train,
    dev=None,
    test=None,
    l1: float | None = None,
    l2: float | str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    schedule: str | None = None,
    l1_step: str | None = None,
    l2_grid: Sequence[float] = L2_GRID,
    refit: bool = True,
    seed: int = 0,
    device=None,
    memory_budget_mb: float = 256.0,
    eval_batch_size: int = 8192,
    job: Job | None = None,
) -> Probe:
    """Train an elastic-net probe on rows ``train`` of ``features``; report accuracies on dev/test if given.

    Arguments left as None take :data:`DEFAULTS`. ``train``/``dev``/``test`` are word-index arrays (repeats
    allowed, e.g. a bootstrap); words with label -1 are dropped.

    ``l2="auto"`` (the default) fits one probe per value of ``l2_grid`` on ``train``, keeps the value with the
    lowest dev cross-entropy (ties: the stronger penalty) and, with ``refit``, trains the final probe on
    train + dev with it. ``metrics["dev_accuracy"]`` is then the held-out dev accuracy of the selection fit, and
    ``metrics["l2_selection"]`` lists every candidate's dev accuracy and cross-entropy. It needs a labelled dev
    split. Cost: ``len(l2_grid) + 1`` fits; the training rows are read and standardised once for the grid.

    ``job`` (:mod:`jobs`): progress in epochs over all fits (:func:`planned_epochs`), one log line per epoch and
    per fit, a cancellation check after every epoch.
    """
    job = as_job(job)
    settings = _probe_settings(l1=l1, l2=l2, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
                               l1_step=l1_step)
    auto = settings["l2"] == "auto"
    label_names = list(label_names)
    labels = check_labels(labels, label_names, len(features))
    train_index = labelled_rows(labels, train)
    if len(train_index) == 0:
        raise ValueError("no labelled training words (all labels missing, or an empty training split)")
    _settle_batch_size(settings, len(train_index))
    dev_index = labelled_rows(labels, dev) if dev is not None else None
    test_index = labelled_rows(labels, test) if test is not None else None
    if auto and (dev_index is None or len(dev_index) == 0):
        raise ValueError("l2='auto' chooses the L2 strength on the dev split: give a labelled dev split or a number")

    started = time.perf_counter()
    device = pick_device(device)
    epoch_counter = _EpochCounter(planned_epochs(settings["epochs"], settings["l2"], l2_grid, refit), job)
    fit = dict(labels=labels, n_classes=len(label_names), device=device, seed=seed, on_epoch=epoch_counter, log=job.log)
    source = _prepare(features, train_index, settings["batch_size"], memory_budget_mb, device, job)

    selection = None
    final_train = train_index
    if auto:
        best, selection, candidates = _select_l2(
            source, settings, fit, l2_grid=l2_grid, features=features, labels=labels, label_names=label_names,
            dev_index=dev_index, eval_batch_size=eval_batch_size, log=job.log,
        )
        settings["l2"] = best
        if refit:
            final_train = np.concatenate([train_index, dev_index])
            del source, candidates  # free the cached rows before reading train + dev
            source = _prepare(features, final_train, settings["batch_size"], memory_budget_mb, device, job)
            weight, bias, mean, std = _fit(source, settings, **fit)
        else:
            weight, bias, mean, std = candidates[best]
    else:
        weight, bias, mean, std = _fit(source, settings, **fit)

    probe = Probe(
        weight=weight,
        bias=bias,
        mean=mean,
        std=std,
        label_names=label_names,
        neuron_ids=list(features.neuron_ids),
        params={
            **settings,
            "seed": seed,
            "objective": "mean cross-entropy + l1*|W|_1 + l2*|W|_2^2 (penalty once per mean loss)",
            "standardised": True,
            "l2_grid": list(l2_grid) if auto else None,
            "refit_on_train_and_dev": bool(auto and refit),
        },
    )
    held_out_dev = dev_index if not (auto and refit) else None
    probe.metrics = evaluate_probe(
        probe, features, labels, train=final_train, dev=held_out_dev, test=test_index, batch_size=eval_batch_size
    )
    if selection is not None:
        probe.metrics["dev_accuracy"] = selection[repr(settings["l2"])]["dev_accuracy"]
        probe.metrics["n_dev"] = int(len(dev_index))
        probe.metrics["l2_selection"] = selection
    probe.metrics["train_seconds"] = round(time.perf_counter() - started, 3)
    probe.metrics["device"] = str(device)
    job.log(f"probe (l2={settings['l2']:g}) accuracy: {_accuracy_summary(probe.metrics)}")
    return probe


def _probe_settings(**given) -> dict:
    """:data:`DEFAULTS` with the arguments that were given (not None) in their place, checked."""
    settings = dict(DEFAULTS)
    for name, value in given.items():
        if value is not None:
            settings[name] = value
    if settings["schedule"] not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {settings['schedule']!r}")
    if settings["l1_step"] not in L1_STEPS:
        raise ValueError(f"l1_step must be one of {L1_STEPS}, not {settings['l1_step']!r}")
    if isinstance(settings["l2"], str) and settings["l2"] != "auto":
        raise ValueError(f"l2 must be a number or 'auto', not {settings['l2']!r}")
    return settings


def _settle_batch_size(settings: dict, n_rows: int) -> None:
    """Turn batch_size "auto" into a number for ``n_rows`` training rows (in ``settings``), then check the
    epochs and batch size."""
    if settings["batch_size"] == "auto":
        settings["batch_size"] = int(min(AUTO_BATCH_MAX, max(32, math.ceil(n_rows / MIN_STEPS_PER_EPOCH))))
    if settings["epochs"] < 0 or not isinstance(settings["batch_size"], int) or settings["batch_size"] < 1:
        raise ValueError("epochs must be ≥ 0 and batch_size an integer ≥ 1 (or 'auto')")


def _select_l2(source: _RowSource, settings: dict, fit: dict, *, l2_grid, features: Features, labels,
               label_names: list, dev_index, eval_batch_size: int, log) -> tuple[float, dict, dict]:
    """Fit one probe per value of ``l2_grid`` (in increasing order) and score it on the dev rows.

    Returns (the chosen value, ``metrics["l2_selection"]``, the fits by value).
    """
    selection = {}
    candidates = {}
    for candidate in sorted(l2_grid):
        fitted = _fit(source, {**settings, "l2": candidate}, **fit)
        scorer = Probe(*fitted, label_names=label_names, neuron_ids=list(features.neuron_ids))
        accuracy, cross_entropy = _score(scorer, features, labels, dev_index, eval_batch_size)
        selection[repr(candidate)] = {"dev_accuracy": accuracy, "dev_cross_entropy": cross_entropy}
        candidates[candidate] = fitted
        log(f"l2={candidate:g}: dev cross-entropy {cross_entropy:.4f}, accuracy {accuracy:.4f}")
    # lowest dev cross-entropy (a smoother criterion than accuracy on a small dev split); ties: stronger penalty
    best = min(sorted(l2_grid), key=lambda c: (selection[repr(c)]["dev_cross_entropy"], -c))
    return best, selection, candidates


def _accuracy_summary(metrics: dict) -> str:
    """"train 0.9512, dev 0.9333, ...": the accuracies the metrics hold, for the log."""
    return ", ".join(
        f"{name} {metrics[name + '_accuracy']:.4f}"
        for name in ("train", "dev", "test")
        if metrics.get(name + "_accuracy") is not None
    )


def _score(probe: Probe, features: Features, labels, index, batch_size: int) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``probe`` on rows ``index``."""
    correct, total_loss = 0, 0.0
    for start in range(0, len(index), batch_size):
        batch = index[start : start + batch_size]
        logits = probe.logits(features.rows(batch)).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(axis=1))
        truth = labels[batch]
        total_loss += float(np.sum(log_norm - logits[np.arange(len(batch)), truth]))
        correct += int(np.sum(logits.argmax(axis=1) == truth))
    return correct / len(index), total_loss / len(index)


class _EpochCounter:
    def __init__(self, total: int, job: Job):
        self.done, self.total, self.job = 0, total, job

    def __call__(self):
        self.done += 1
        self.job.progress(self.done, self.total, "epochs")
        self.job.check_cancelled()


def _prepare(features, train_index, batch_size, memory_budget_mb, device, job: Job) -> _RowSource:
    chunk_rows = max(int(memory_budget_mb * 2**20 // (4 * features.shape[1])), batch_size)
    mean, std = standardisation(features, train_index, chunk_rows, job.without_progress())
    return _RowSource(features, train_index, mean, std, chunk_rows, device)


def _fit(source: _RowSource, settings, *, labels, n_classes, device, seed, on_epoch, log):
    """One Adam run on fixed settings over the rows of ``source``; returns (weight, bias, mean, std)."""
    import torch

    train_index, n_features = source.index, len(source.mean)
    batch = settings["batch_size"]
    train_labels = torch.from_numpy(labels[train_index]).to(device)

    weight = torch.zeros(n_classes, n_features, device=device, requires_grad=True)
    bias = torch.zeros(n_classes, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=settings["lr"])
    rng = np.random.default_rng(seed)
    l1_strength, l2_strength = float(settings["l1"]), float(settings["l2"])
    proximal = settings["l1_step"] == "proximal"
    total_steps = math.ceil(len(train_index) / batch) * settings["epochs"]

    step = 0
    for epoch in range(settings["epochs"]):
        chunks = source.epoch_chunks(rng)
        epoch_loss = 0.0
        for positions, x in source.batches(chunks, batch):
            y = train_labels[torch.from_numpy(positions).to(device)]
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(settings["schedule"], settings["lr"], step, total_steps)
            cross_entropy = torch.nn.functional.cross_entropy(x @ weight.T + bias, y)
            loss = cross_entropy + l2_strength * weight.square().sum()
            if not proximal:
                loss = loss + l1_strength * weight.abs().sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if proximal:
                _soft_threshold(weight, optimizer, l1_strength)
            epoch_loss += float(cross_entropy.detach()) * len(y)
            step += 1
        mean_loss = epoch_loss / len(train_index)
        log(f"epoch {epoch + 1}/{settings['epochs']} (l2={l2_strength:g}): cross-entropy {mean_loss:.4f}")
        on_epoch()
    return (
        weight.detach().cpu().numpy().astype(np.float32),
        bias.detach().cpu().numpy().astype(np.float32),
        source.mean,
        source.std,
    )


def _soft_threshold(weight, optimizer, l1_strength: float) -> None:
    """The proximal step of λ1·‖W‖₁ in Adam's metric: shrink each weight towards zero by Adam's step size for
    it times λ1, and set it to zero when it would cross (see :data:`L1_STEPS`)."""
    import torch

    group, state = optimizer.param_groups[0], optimizer.state[weight]
    beta2, eps = group["betas"][1], group["eps"]
    corrected = state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))
    threshold = group["lr"] * l1_strength / (corrected.sqrt() + eps)
    with torch.no_grad():
        weight.copy_(weight.sign() * torch.clamp(weight.abs() - threshold, min=0.0))


def evaluate_probe(
    probe: Probe,
    features: Features,
    labels,
    *,
    train=None,
    dev=None,
    test=None,
    keep: np.ndarray | None = None,
    batch_size: int = 8192,
    label_names: Sequence[str] | None = None,
) -> dict:
    """Accuracy on each given split (missing labels dropped), per-label accuracy on test, majority baseline.

    ``keep`` evaluates the zero-out variant (see :meth:`Probe.logits`). ``label_names``: the names ``labels``
    number (another corpus's store); the labels are then matched to the probe's by name, and words whose label
    the probe does not know are left out and counted in ``metrics["unknown_labels"]``.
    """
    unknown: dict[str, int] = {}
    if label_names is None:
        labels = check_labels(labels, probe.label_names, len(features))
    else:
        labels = check_labels(labels, label_names, len(features))
        given = [np.asarray(index, dtype=np.int64) for index in (train, dev, test) if index is not None]
        evaluated = np.unique(np.concatenate(given)) if given else np.zeros(0, dtype=np.int64)
        _, unknown = align_labels(labels[evaluated], label_names, probe.label_names)
        labels, _ = align_labels(labels, label_names, probe.label_names)
    metrics: dict = {}
    if label_names is not None:
        metrics["unknown_labels"] = unknown
        metrics["n_unknown_label"] = int(sum(unknown.values()))
    predictions = {}
    for name, index in (("train", train), ("dev", dev), ("test", test)):
        if index is None:
            metrics[f"{name}_accuracy"] = None
            continue
        index = labelled_rows(labels, index)
        metrics[f"n_{name}"] = int(len(index))
        if len(index) == 0:
            metrics[f"{name}_accuracy"] = None
            continue
        predicted = probe.predict_features(features, index, keep=keep, batch_size=batch_size)
        predictions[name] = (index, predicted)
        metrics[f"{name}_accuracy"] = float(np.mean(predicted == labels[index]))
    if "test" in predictions:
        index, predicted = predictions["test"]
        truth = labels[index]
        metrics["per_label_accuracy"] = {
            probe.label_names[c]: float(np.mean(predicted[truth == c] == c)) for c in np.unique(truth)
        }
        metrics["per_label_count"] = {probe.label_names[c]: int(np.sum(truth == c)) for c in np.unique(truth)}
    if train is not None and "test" in predictions:
        train_truth = labels[labelled_rows(labels, train)]
        if len(train_truth):
            majority = int(np.bincount(train_truth, minlength=probe.n_classes).argmax())
            metrics["majority_label"] = probe.label_names[majority]
            metrics["majority_accuracy"] = float(np.mean(labels[predictions["test"][0]] == majority))
            unseen = sorted(set(np.unique(labels[predictions["test"][0]])) - set(np.unique(train_truth)))
            metrics["labels_unseen_in_train"] = [probe.label_names[c] for c in unseen]
    return metrics


@dataclass(frozen=True)
class LabelledWords:
    """Words of a second corpus to score a probe on: its features (same neurons as the probe), its labels as ids
    into its own ``label_names``, and optionally which rows (default: every word)."""

    features: Features
    labels: np.ndarray
    label_names: list[str]
    rows: np.ndarray | None = None

    @property
    def index(self) -> np.ndarray:
        return np.arange(len(self.features)) if self.rows is None else np.asarray(self.rows, dtype=np.int64)

    def select(self, columns) -> LabelledWords:
        """The same words with only some neurons (positions into the features' neurons)."""
        return LabelledWords(self.features.select(columns), self.labels, self.label_names, self.rows)


def evaluate_on(probe: Probe, words: LabelledWords, keep: np.ndarray | None = None) -> dict:
    """The probe's accuracy on another corpus's words, labels matched by name (see the module docstring).

    Returns ``accuracy``, ``n_words`` (words scored), ``per_label_accuracy``, ``per_label_count``,
    ``unknown_labels`` and ``n_unknown_label``.
    """
    metrics = evaluate_probe(probe, words.features, words.labels, test=words.index, keep=keep,
                             label_names=words.label_names)
    return {
        "accuracy": metrics["test_accuracy"],
        "n_words": metrics["n_test"],
        "per_label_accuracy": metrics.get("per_label_accuracy", {}),
        "per_label_count": metrics.get("per_label_count", {}),
        "unknown_labels": metrics["unknown_labels"],
        "n_unknown_label": metrics["n_unknown_label"],
    }
