"""Cross-model correlation rankings (Bau et al.; methods.md §2.4), unsupervised, over ≥ 2 models on the same words.

Every model is a :class:`Features` with the same rows (word i of one is word i of the others). Correlations
are never computed from whole matrices: :func:`correlation_blocks` streams rows once per column block of the
first model and accumulates cross-products of mean-centred values, so memory is one ``block × D_other``
float64 matrix (``max_bytes``), whatever the corpus size.

* MaxCorr / MinCorr: score(i in m) = max (resp. min) over other models m′ of max_j |ρ(x_i^m, x_j^m′)|.
* LinReg: standardised ridge least squares (ridge ``1e-3`` on the correlation matrix, for the strongly
  collinear hidden states; 0 gives plain least squares) of x_i^m from all neurons of m′, fit on the first half
  of the rows, mean squared error of the standardised target on the second half (contiguous halves, so
  sentences are not split across both); averaged over m′; lowest error first (``scores`` hold the error,
  ``params["lower_is_better"]``). It needs the D′×D′ correlation matrix of m′: meant for per-layer or
  per-model widths up to a few thousand neurons.
* SVCCA: per model, keep the principal directions that explain 99 % of the variance; CCA between the reduced
  representations; canonical directions mapped back to neuron space and orthonormalised in order of canonical
  correlation give a basis ``B`` (k × D, orthonormal rows). Erasing directions E of h is
  ``h − (h·B[E]ᵀ)·B[E]``, i.e. h′ = ((h·Bᵀ)·M)·B with B completed to a full orthonormal basis and M the identity
  with E zeroed (:func:`erase_directions`). SVCCA ranks directions; so that each model's neurons still get a
  Ranking we score neuron i by Σ_k ρ_k · B[k, i]² (its weight in the canonical directions, weighted by their
  correlation), averaged over partner models — our choice, not from the paper.

Progress (the job contract) is counted in passes over the rows: one per moments pass, one per correlation block,
one for LinReg's held-out errors. Every total is known before the first pass; a cancel stops after the pass in
progress. Method names requested and recorded are the same: maxcorr, mincorr, linreg, svcca.

:data:`METHODS` is their registry, in the shape of :data:`analysis.engine.methods.METHODS`: each method's
``rank(models, model_names, job, **options)`` returns one Ranking per model, in the models' order, and declares
its options (:class:`~analysis.engine.options.Option`) and what its score means.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .features import Features
from .jobs import Job, as_job
from .moments import batch_rows_for, column_moments
from .options import Option
from .ranking import Ranking, order_by_score

UNIT = "row passes"
RIDGE = Option("ridge", float, 1e-3, "LinReg's ridge penalty on the correlation matrix; 0 is plain least squares",
               minimum=0, maximum=1000, label="Ridge penalty")  # correlations are at most 1: 1000 is all penalty
VARIANCE_KEPT = Option("variance_kept", float, 0.99, "the share of each model's variance its principal "
                       "directions keep before CCA", minimum=0, above_minimum=True, maximum=1, label="Variance kept")


def check_models(models) -> list[Features]:
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"cross-model rankings need at least 2 models, got {len(models)}")
    rows = [len(m) for m in models]
    if len(set(rows)) != 1:
        raise ValueError(f"models must be run over the same words: row counts differ {rows}")
    return models


def _rows(models, rows) -> np.ndarray:
    rows = np.arange(len(models[0])) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) < 3:
        raise ValueError("need at least 3 words to correlate neurons")
    return rows


class _Passes:
    """Counts passes over the rows as one job's progress, with a cancellation check after each."""

    def __init__(self, job: Job | None, total: int):
        self.job, self.total, self.done = as_job(job), total, 0

    def step(self) -> None:
        self.done += 1
        self.job.progress(self.done, self.total, UNIT)
        self.job.check_cancelled()


def _block_height(width_b: int, max_bytes: int) -> int:
    return max(1, int(max_bytes // (8 * width_b)))


def _block_count(width_a: int, width_b: int, max_bytes: int) -> int:
    """Correlation blocks (= passes over the rows) for a's neurons against all of b's."""
    return math.ceil(width_a / _block_height(width_b, max_bytes))


def _mean_and_std(features: Features, rows: np.ndarray, passes: _Passes | None = None):
    """(mean, population std) per neuron over ``rows``, streamed (one pass)."""
    passes = passes or _Passes(None, 1)
    mean, variance = column_moments(features, rows, job=passes.job.without_progress())
    passes.step()
    return mean, np.sqrt(variance)


def correlation_blocks(a: Features, b: Features, rows=None, max_bytes: int = 256 << 20,
                       stats_a=None, stats_b=None, passes: _Passes | None = None):
    """Yield ``(start, stop, ρ[start:stop, :])``: Pearson correlations of a's neurons with all of b's.

    One pass over the rows per block; the block height is ``max_bytes // (8 · D_b)``. Values are centred by
    the streamed means (float32 products per batch, summed in float64). Constant neurons give NaN.
    """
    rows = _rows([a, b], rows)
    n = len(rows)
    passes = passes or _Passes(None, 0)
    mean_a, std_a = stats_a or _mean_and_std(a, rows, passes)
    mean_b, std_b = stats_b or _mean_and_std(b, rows, passes)
    width_a, width_b = a.shape[1], b.shape[1]
    height = _block_height(width_b, max_bytes)
    batch_size = batch_rows_for(width_a + width_b, bytes_per_value=4)
    centre_a, centre_b = mean_a.astype(np.float32), mean_b.astype(np.float32)
    for start in range(0, width_a, height):
        stop = min(start + height, width_a)
        products = np.zeros((stop - start, width_b))
        sum_a, sum_b = np.zeros(stop - start), np.zeros(width_b)
        for batch_start in range(0, n, batch_size):
            batch = rows[batch_start : batch_start + batch_size]
            xa = a.rows(batch)[:, start:stop] - centre_a[start:stop]
            xb = b.rows(batch) - centre_b
            products += xa.T @ xb
            sum_a += xa.sum(0, dtype=np.float64)
            sum_b += xb.sum(0, dtype=np.float64)
        covariance = products / n - np.outer(sum_a / n, sum_b / n)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.outer(std_a[start:stop], std_b)
            corr = np.where(scale > 0, covariance / scale, np.nan)
        yield start, stop, np.clip(corr, -1.0, 1.0)
        passes.step()


def correlation_matrix(a: Features, b: Features, rows=None, max_bytes: int = 256 << 20) -> np.ndarray:
    """The full D_a × D_b correlation matrix (small models and tests; the rankings never build it)."""
    out = np.empty((a.shape[1], b.shape[1]))
    for start, stop, corr in correlation_blocks(a, b, rows, max_bytes):
        out[start:stop] = corr
    return out


def _best_abs(corr: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """max |ρ| along ``axis`` ignoring NaN (NaN when all are NaN) and where it is."""
    magnitude = np.abs(corr)
    filled = np.where(np.isnan(magnitude), -1.0, magnitude)
    where = filled.argmax(axis=axis)
    best = filled.max(axis=axis)
    return np.where(best < 0, np.nan, best), where


def _best_correlation_passes(widths, max_bytes: int) -> int:
    return len(widths) + sum(_block_count(wa, wb, max_bytes) for wa, wb in itertools.combinations(widths, 2))


def best_correlations(models, rows=None, max_bytes: int = 256 << 20, job: Job | None = None):
    """For each model m and other model m′: max_j |ρ(x_i^m, x_j^m′)| per neuron i, and the j that gives it.

    Each unordered pair is computed once; both directions come from the same blocks.
    Returns ``best[m][m′]`` and ``partner[m][m′]`` arrays.
    """
    models = check_models(models)
    rows = _rows(models, rows)
    passes = _Passes(job, _best_correlation_passes([m.shape[1] for m in models], max_bytes))
    stats = [_mean_and_std(m, rows, passes) for m in models]
    best = [dict() for _ in models]
    partner = [dict() for _ in models]
    for i, j in itertools.combinations(range(len(models)), 2):
        best_i, partner_i = np.full(models[i].shape[1], np.nan), np.zeros(models[i].shape[1], np.int64)
        best_j, partner_j = np.full(models[j].shape[1], np.nan), np.zeros(models[j].shape[1], np.int64)
        for start, stop, corr in correlation_blocks(models[i], models[j], rows, max_bytes, stats[i], stats[j],
                                                    passes):
            best_i[start:stop], partner_i[start:stop] = _best_abs(corr, axis=1)
            block_best, block_where = _best_abs(corr, axis=0)
            better = np.isnan(best_j) & ~np.isnan(block_best) | (block_best > best_j)
            best_j[better], partner_j[better] = block_best[better], block_where[better] + start
        best[i][j], partner[i][j] = best_i, partner_i
        best[j][i], partner[j][i] = best_j, partner_j
    return best, partner


def _names(models, model_names):
    names = list(model_names) if model_names is not None else [f"model{i}" for i in range(len(models))]
    if len(names) != len(models):
        raise ValueError(f"{len(names)} model names for {len(models)} models")
    return names


def maxcorr_mincorr_rankings(models, rows=None, model_names=None, max_bytes: int = 256 << 20,
                             job: Job | None = None):
    """``{"maxcorr": [Ranking per model], "mincorr": [...]}``; params name each neuron's best correlate."""
    models = check_models(models)
    names = _names(models, model_names)
    best, partner = best_correlations(models, rows, max_bytes, job)
    out = {"maxcorr": [], "mincorr": []}
    for m, features in enumerate(models):
        others = sorted(best[m])
        stacked = np.stack([best[m][o] for o in others])  # [others, D]
        with warnings.catch_warnings():  # constant neurons legitimately have no correlation (all-NaN)
            warnings.simplefilter("ignore", RuntimeWarning)
            reductions = {"maxcorr": np.nanmax(stacked, axis=0), "mincorr": np.nanmin(stacked, axis=0)}
        correlates = {names[o]: [features_label(models[o], p) for p in partner[m][o]] for o in others} \
            if features.shape[1] <= 4096 else {}
        for method, scores in reductions.items():
            out[method].append(Ranking(
                method=method, neuron_ids=list(features.neuron_ids),
                order=order_by_score(scores), scores=scores,
                params={"model": names[m], "other_models": [names[o] for o in others],
                        "n_rows": int(len(_rows(models, rows))), "best_correlate": correlates},
            ))
    return out


def features_label(features: Features, position) -> str:
    return features.neuron_ids[int(position)].label


def _standardised_correlations(corr: np.ndarray) -> np.ndarray:
    return np.nan_to_num(corr, nan=0.0)


def _linreg_passes(width_target: int, width_source: int, max_bytes: int) -> int:
    # two moments passes, the source's own correlations, source × target, then the held-out errors
    return (2 + _block_count(width_source, width_source, max_bytes)
            + _block_count(width_source, width_target, max_bytes) + 1)


def linreg_errors(target: Features, source: Features, rows=None, ridge: float = RIDGE.default,
                  max_bytes: int = 256 << 20, job: Job | None = None) -> np.ndarray:
    """Held-out MSE of each standardised neuron of ``target`` predicted from all of ``source`` (see module doc)."""
    rows = _rows([target, source], rows)
    half = len(rows) // 2
    fit, held_out = rows[:half], rows[half:]
    passes = _Passes(job, _linreg_passes(target.shape[1], source.shape[1], max_bytes))
    stats_s, stats_t = _mean_and_std(source, fit, passes), _mean_and_std(target, fit, passes)
    width_s = source.shape[1]
    gram = np.empty((width_s, width_s))
    for start, stop, corr in correlation_blocks(source, source, fit, max_bytes, stats_s, stats_s, passes):
        gram[start:stop] = _standardised_correlations(corr)
    np.fill_diagonal(gram, 1.0)
    cross = np.empty((width_s, target.shape[1]))
    for start, stop, corr in correlation_blocks(source, target, fit, max_bytes, stats_s, stats_t, passes):
        cross[start:stop] = _standardised_correlations(corr)
    coefficients = np.linalg.solve(gram + ridge * np.eye(width_s), cross).astype(np.float32)
    del gram, cross
    (mean_s, std_s), (mean_t, std_t) = stats_s, stats_t
    std_s, std_t = np.where(std_s > 0, std_s, 1.0), np.where(std_t > 0, std_t, 1.0)
    errors = np.zeros(target.shape[1])
    batch_size = batch_rows_for(width_s + target.shape[1], bytes_per_value=4)
    for start in range(0, len(held_out), batch_size):
        batch = held_out[start : start + batch_size]
        z_source = ((source.rows(batch) - mean_s) / std_s).astype(np.float32)
        z_target = (target.rows(batch) - mean_t) / std_t
        errors += np.square(z_target - z_source @ coefficients).sum(0)
    passes.step()
    return errors / len(held_out)


def _linreg_ranking_passes(widths, max_bytes: int) -> int:
    pairs = itertools.permutations(range(len(widths)), 2)  # (target, source)
    return sum(_linreg_passes(widths[m], widths[o], max_bytes) for m, o in pairs)


def linreg_rankings(models, rows=None, model_names=None, ridge: float = RIDGE.default,
                    max_bytes: int = 256 << 20, job: Job | None = None) -> list[Ranking]:
    """One Ranking per model: average held-out error over the other models, lowest first."""
    models = check_models(models)
    names = _names(models, model_names)
    job = as_job(job)
    widths = [m.shape[1] for m in models]
    total, done = _linreg_ranking_passes(widths, max_bytes), 0
    out = []
    for m, target in enumerate(models):
        others = [o for o in range(len(models)) if o != m]
        errors = []
        for o in others:
            errors.append(linreg_errors(target, models[o], rows, ridge, max_bytes, job.part(done, total)))
            done += _linreg_passes(widths[m], widths[o], max_bytes)
        errors = np.mean(errors, axis=0)
        out.append(Ranking(
            method="linreg", neuron_ids=list(target.neuron_ids),
            order=order_by_score(errors, descending=False), scores=errors,
            params={"model": names[m], "other_models": [names[o] for o in others], "ridge": ridge,
                    "split": "first half fit, second half error", "lower_is_better": True},
        ))
    return out


@dataclass
class SVCCAResult:
    correlations: np.ndarray  # [k] canonical correlations, descending
    basis_a: np.ndarray  # [k, D_a] orthonormal rows, in order of canonical correlation
    basis_b: np.ndarray  # [k, D_b]
    kept: tuple[int, int]  # principal directions kept per model
    params: dict = field(default_factory=dict)


def _covariance(a: Features, b: Features, rows, stats_a, stats_b, max_bytes, passes):
    for start, stop, corr in correlation_blocks(a, b, rows, max_bytes, stats_a, stats_b, passes):
        yield start, stop, np.nan_to_num(corr) * np.outer(stats_a[1][start:stop], stats_b[1])


def _principal_directions(features: Features, rows, stats, variance_kept: float, max_bytes, passes):
    width = features.shape[1]
    covariance = np.empty((width, width))
    for start, stop, block in _covariance(features, features, rows, stats, stats, max_bytes, passes):
        covariance[start:stop] = block
    values, vectors = np.linalg.eigh(covariance)
    values, vectors = values[::-1].clip(min=0), vectors[:, ::-1]
    if values.sum() <= 0:
        raise ValueError("SVCCA: a model's activations are constant on these words")
    keep = int(np.searchsorted(np.cumsum(values) / values.sum(), variance_kept) + 1)
    keep = min(keep, int((values > values[0] * 1e-10).sum()))
    return values[:keep], vectors[:, :keep]


def _svcca_passes(width_a: int, width_b: int, max_bytes: int) -> int:
    # two moments passes, each model's own covariance, then the cross-covariance
    return (2 + _block_count(width_a, width_a, max_bytes) + _block_count(width_b, width_b, max_bytes)
            + _block_count(width_a, width_b, max_bytes))


def svcca_pair(a: Features, b: Features, rows=None, variance_kept: float = VARIANCE_KEPT.default,
               max_bytes: int = 256 << 20, job: Job | None = None) -> SVCCAResult:
    rows = _rows([a, b], rows)
    passes = _Passes(job, _svcca_passes(a.shape[1], b.shape[1], max_bytes))
    stats_a, stats_b = _mean_and_std(a, rows, passes), _mean_and_std(b, rows, passes)
    values_a, directions_a = _principal_directions(a, rows, stats_a, variance_kept, max_bytes, passes)
    values_b, directions_b = _principal_directions(b, rows, stats_b, variance_kept, max_bytes, passes)
    reduced_cross = np.zeros((len(values_a), len(values_b)))
    for start, stop, block in _covariance(a, b, rows, stats_a, stats_b, max_bytes, passes):
        reduced_cross += directions_a[start:stop].T @ block @ directions_b
    whitened = reduced_cross / np.sqrt(np.outer(values_a, values_b))
    u, correlations, vt = np.linalg.svd(whitened, full_matrices=False)
    canonical_a = directions_a @ (u / np.sqrt(values_a)[:, None])
    canonical_b = directions_b @ (vt.T / np.sqrt(values_b)[:, None])
    basis_a, _ = np.linalg.qr(canonical_a)
    basis_b, _ = np.linalg.qr(canonical_b)
    # QR may flip signs; align each basis vector with its canonical direction
    basis_a *= np.sign(np.sum(basis_a * canonical_a, axis=0))
    basis_b *= np.sign(np.sum(basis_b * canonical_b, axis=0))
    return SVCCAResult(np.clip(correlations, 0, 1), basis_a.T, basis_b.T, (len(values_a), len(values_b)),
                       {"variance_kept": variance_kept, "n_rows": int(len(rows))})


def erase_directions(h: np.ndarray, basis: np.ndarray, directions) -> np.ndarray:
    """h′ = h with the chosen SVCCA directions (rows of ``basis``) removed: h − (h·B[E]ᵀ)·B[E]."""
    chosen = basis[np.asarray(directions, dtype=np.int64)]
    return h - (h @ chosen.T) @ chosen


def _svcca_ranking_passes(widths, max_bytes: int) -> int:
    return sum(_svcca_passes(wa, wb, max_bytes) for wa, wb in itertools.combinations(widths, 2))


def svcca_rankings(models, rows=None, model_names=None, variance_kept: float = VARIANCE_KEPT.default,
                   max_bytes: int = 256 << 20, job: Job | None = None) -> tuple[list[Ranking], dict]:
    """Neuron Rankings per model (see module doc) and the pairwise :class:`SVCCAResult` by (m, m′)."""
    models = check_models(models)
    names = _names(models, model_names)
    job = as_job(job)
    widths = [m.shape[1] for m in models]
    total, done = _svcca_ranking_passes(widths, max_bytes), 0
    scores = [np.zeros(m.shape[1]) for m in models]
    pairs = {}
    for i, j in itertools.combinations(range(len(models)), 2):
        result = svcca_pair(models[i], models[j], rows, variance_kept, max_bytes, job.part(done, total))
        done += _svcca_passes(widths[i], widths[j], max_bytes)
        pairs[(i, j)] = result
        scores[i] += result.correlations @ result.basis_a**2
        scores[j] += result.correlations @ result.basis_b**2
    rankings = []
    for m, features in enumerate(models):
        score = scores[m] / (len(models) - 1)
        partner_corrs = {names[j if i == m else i]: [float(c) for c in r.correlations[:20]]
                         for (i, j), r in pairs.items() if m in (i, j)}
        rankings.append(Ranking(
            method="svcca", neuron_ids=list(features.neuron_ids), order=order_by_score(score),
            scores=score, params={"model": names[m], "variance_kept": variance_kept,
                                  "top_canonical_correlations": partner_corrs},
        ))
    return rankings, pairs


@dataclass(frozen=True)
class CrossModelMethod:
    """One cross-model method: ``rank(models, model_names, job, **options)`` gives a Ranking per model, in order."""

    name: str
    rank: Callable[..., list[Ranking]]
    unit: str  # what its progress counts
    description: str
    options: tuple[Option, ...] = ()  # what a run may set (keyword arguments of ``rank``)
    score: str = ""  # what ``Ranking.scores`` holds


def _best_correlation_rankings(method: str):
    def rank(models, model_names=None, job: Job | None = None) -> list[Ranking]:
        return maxcorr_mincorr_rankings(models, model_names=model_names, job=job)[method]
    return rank


def _linreg(models, model_names=None, job: Job | None = None, **options) -> list[Ranking]:
    return linreg_rankings(models, model_names=model_names, job=job, **options)


def _svcca(models, model_names=None, job: Job | None = None, **options) -> list[Ranking]:
    return svcca_rankings(models, model_names=model_names, job=job, **options)[0]


METHODS: dict[str, CrossModelMethod] = {method.name: method for method in (
    CrossModelMethod("maxcorr", _best_correlation_rankings("maxcorr"), UNIT,
                     "neurons with a close correlate in some other model",
                     score="the largest, over the other models, of the neuron's best |correlation| there"),
    CrossModelMethod("mincorr", _best_correlation_rankings("mincorr"), UNIT,
                     "neurons with a close correlate in every other model",
                     score="the smallest, over the other models, of the neuron's best |correlation| there"),
    CrossModelMethod("linreg", _linreg, UNIT, "neurons the other models predict best (ridge regression)",
                     options=(RIDGE,), score="the held-out mean squared error of the standardised neuron "
                     "predicted from each other model, averaged; lower ranks first"),
    CrossModelMethod("svcca", _svcca, UNIT, "neurons' weight in the SVCCA directions shared with the other models",
                     options=(VARIANCE_KEPT,), score="Σ over canonical directions of their correlation × the "
                     "neuron's squared weight in them, averaged over the other models"),
)}


def method_named(name: str) -> CrossModelMethod:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown cross-model method {name!r}; choose one of {', '.join(METHODS)}") from None


def crossmodel_rankings(models, methods=tuple(METHODS), rows=None, model_names=None,
                        max_bytes: int = 256 << 20, job: Job | None = None) -> dict[str, list[Ranking]]:
    """Every requested cross-model method: ``{method: [Ranking per model]}``, one progress over all of them."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown cross-model methods {sorted(unknown)}: use {', '.join(METHODS)}")
    models = check_models(models)
    job = as_job(job)
    widths = [m.shape[1] for m in models]
    runs = []  # (passes, run): maxcorr and mincorr come from the same correlations, computed once for both
    if {"maxcorr", "mincorr"} & set(methods):
        runs.append((_best_correlation_passes(widths, max_bytes),
                     lambda part: maxcorr_mincorr_rankings(models, rows, model_names, max_bytes, part)))
    if "linreg" in methods:
        runs.append((_linreg_ranking_passes(widths, max_bytes),
                     lambda part: {"linreg": linreg_rankings(models, rows, model_names, max_bytes=max_bytes,
                                                             job=part)}))
    if "svcca" in methods:
        runs.append((_svcca_ranking_passes(widths, max_bytes),
                     lambda part: {"svcca": svcca_rankings(models, rows, model_names, max_bytes=max_bytes,
                                                           job=part)[0]}))
    total, done, out = sum(passes for passes, _ in runs), 0, {}
    for passes, run in runs:
        out.update({name: rankings for name, rankings in run(job.part(done, total)).items() if name in methods})
        done += passes
    return out
