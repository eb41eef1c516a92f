"""Ranking confidence (methods.md §2.7): bootstrap over sentences, and agreement between methods.

:func:`bootstrap_confidence` resamples whole **sentences** with replacement (words of one sentence are not
independent), hands the resampled word rows — with repeats — to ``rank_fn`` and summarises where each neuron
landed: its 5th–95th percentile rank interval, its median rank, and for each k the top-k stability, the mean
pairwise Jaccard overlap of the top-k sets across resamples. :func:`method_agreement` compares the top-k of
different methods (Jaccard and Kendall τ).

**Consensus** (``consensus=``): instead of the one full-data ordering, order the neurons by what the resamples
agree on — ``"mean_rank"`` (mean rank across resamples, ties: median rank, then neuron id) or
``"selection_frequency"`` (stability selection: the fraction of resamples in which the neuron is in the top
``consensus_k``, ties: mean rank). Its own stability is measured split-half: the resamples are cut into two
disjoint halves, a consensus is built from each, and ``confidence["consensus"]["stability"][k]`` is the Jaccard
of their top-k sets (a conservative figure: each half has only half the resamples the reported consensus has).
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import numpy as np

from .jobs import Job, as_job
from .ranking import Ranking


def resolve_k(k, n_neurons: int) -> int:
    """``10`` -> 10; ``"1%"`` -> 1 % of the neurons (at least 1); never more than ``n_neurons``."""
    if isinstance(k, str):
        if not k.endswith("%"):
            raise ValueError(f"k must be an int or a percentage like '1%', got {k!r}")
        value = int(round(float(k[:-1]) / 100 * n_neurons))
    else:
        value = int(k)
    if value < 1:
        value = 1
    return min(value, n_neurons)


def jaccard(a, b) -> float:
    a, b = set(int(x) for x in a), set(int(x) for x in b)
    return len(a & b) / len(a | b) if a | b else 1.0


def mean_pairwise_jaccard(top_sets: np.ndarray) -> float:
    """Mean Jaccard over all pairs of rows of ``top_sets`` [B, k] (each row one top-k set)."""
    b = len(top_sets)
    if b < 2:
        return float("nan")
    k = top_sets.shape[1]
    n = int(top_sets.max()) + 1
    membership = np.zeros((b, n), dtype=np.float64)
    np.put_along_axis(membership, top_sets, 1.0, axis=1)
    inter = membership @ membership.T
    union = 2 * k - inter
    pairs = np.triu_indices(b, 1)
    return float(np.mean(inter[pairs] / union[pairs]))


def sentence_resample(sentence_offsets, rng: np.random.Generator, sentences=None) -> np.ndarray:
    """Word rows of a bootstrap resample of sentences (drawn with replacement, so rows may repeat)."""
    offsets = np.asarray(sentence_offsets, dtype=np.int64)
    pool = np.arange(len(offsets) - 1) if sentences is None else np.asarray(sentences, dtype=np.int64)
    drawn = pool[rng.integers(0, len(pool), size=len(pool))]
    starts, lengths = offsets[drawn], offsets[drawn + 1] - offsets[drawn]
    # rows = start of each drawn sentence + 0..length-1, without a Python loop
    total = int(lengths.sum())
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + within


CONSENSUS_METHODS = ("mean_rank", "selection_frequency")


def consensus_order(ranks: np.ndarray, how: str = "mean_rank", k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(order, scores)`` of the consensus of resampled rankings ``ranks`` [B, N] (rank 0 = best, per resample).

    ``scores`` are higher = more important: minus the mean rank, or the top-``k`` selection frequency."""
    ranks = np.asarray(ranks, dtype=np.float64)
    ids = np.arange(ranks.shape[1])
    mean_rank, median_rank = ranks.mean(axis=0), np.median(ranks, axis=0)
    if how == "mean_rank":
        return np.lexsort((ids, median_rank, mean_rank)), -mean_rank
    if how == "selection_frequency":
        frequency = (ranks < k).mean(axis=0)
        return np.lexsort((ids, mean_rank, -frequency)), frequency
    raise ValueError(f"consensus must be one of {', '.join(CONSENSUS_METHODS)}, not {how!r}")


def _consensus(ranking: Ranking, ranks: np.ndarray, how: str, consensus_k, resolved: dict) -> None:
    """Replace ``ranking``'s order and scores by the consensus of ``ranks``; record its split-half stability."""
    n_neurons = ranks.shape[1]
    k = resolve_k(consensus_k, n_neurons)
    half = len(ranks) // 2
    first, _ = consensus_order(ranks[:half], how, k)
    second, _ = consensus_order(ranks[half : 2 * half], how, k)
    order, scores = consensus_order(ranks, how, k)
    ranking.confidence["consensus"] = {
        "method": how,
        **({"k": k} if how == "selection_frequency" else {}),
        "stability": {key: jaccard(first[:top], second[:top]) for key, top in resolved.items()},
        "stability_measured": "Jaccard of the consensus top-k of two disjoint halves of the resamples",
        "full_data_order": [int(i) for i in ranking.order],
    }
    ranking.order, ranking.scores = order, scores
    ranking.params["consensus"] = how


def _check_bootstrap_arguments(offsets: np.ndarray, n_boot: int, consensus: str | None) -> None:
    if offsets.ndim != 1 or len(offsets) < 2 or offsets[0] < 0 or np.any(np.diff(offsets) < 0):
        raise ValueError("sentence_offsets must be a non-decreasing array of at least 2 word offsets")
    if n_boot < 2:
        raise ValueError("n_boot must be at least 2 to measure stability")
    if consensus is not None:
        if consensus not in CONSENSUS_METHODS:
            raise ValueError(f"consensus must be one of {', '.join(CONSENSUS_METHODS)}, not {consensus!r}")
        if n_boot < 4:
            raise ValueError("a consensus ranking needs at least 4 bootstrap resamples (its stability is split-half)")


def _rows_of_sentences(offsets: np.ndarray, sentences=None) -> np.ndarray:
    """The word rows of ``sentences`` (every sentence when None), in order: the full-data ranking's rows."""
    pool = np.arange(len(offsets) - 1) if sentences is None else np.asarray(sentences, dtype=np.int64)
    if not len(pool):
        return np.array([], dtype=np.int64)
    return np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in pool])


def _resampled_ranks(rank_fn, offsets: np.ndarray, sentences, rng: np.random.Generator, n_boot: int,
                     n_neurons: int, resolved: dict, job: Job) -> tuple[np.ndarray, dict]:
    """Rank ``n_boot`` sentence resamples: (each neuron's rank in each resample [n_boot, n_neurons], and for
    each k of ``resolved`` the top-k of each resample)."""
    ranks = np.empty((n_boot, n_neurons), dtype=np.int64)
    tops = {key: np.empty((n_boot, k), dtype=np.int64) for key, k in resolved.items()}
    for b in range(n_boot):
        resampled = rank_fn(sentence_resample(offsets, rng, sentences))
        if len(resampled.order) != n_neurons:
            raise ValueError(f"rank_fn returned {len(resampled.order)} neurons, expected {n_neurons}")
        ranks[b] = resampled.rank_of()
        for key, k in resolved.items():
            tops[key][b] = resampled.order[:k]
        job.progress(b + 1, n_boot, "resamples")
        job.check_cancelled()
    return ranks, tops


def bootstrap_confidence(rank_fn: Callable[[np.ndarray], Ranking], sentence_offsets, n_boot: int = 20,
                         seed: int = 0, ks: Sequence = (10, 50, "1%"), ranking: Ranking | None = None,
                         sentences=None, job: Job | None = None, consensus: str | None = None,
                         consensus_k=10) -> Ranking:
    """Bootstrap a ranking over sentences; returns ``ranking`` with ``ranking.confidence`` filled in.

    ``rank_fn(word_rows)`` must rank on exactly those rows (an int64 index array that may repeat).
    ``ranking`` is the full-data ranking; computed with ``rank_fn`` on all rows of ``sentences`` when omitted.
    ``sentences`` restricts the resampled pool (e.g. the training sentences). ``job``: progress in resamples,
    a cancellation check after each. ``consensus`` (one of :data:`CONSENSUS_METHODS`, needs ``n_boot`` ≥ 4):
    the returned ranking's order and scores are the resamples' consensus (see the module docstring); the
    per-label sub-rankings stay the full-data ones.
    """
    job = as_job(job)
    offsets = np.asarray(sentence_offsets, dtype=np.int64)
    _check_bootstrap_arguments(offsets, n_boot, consensus)
    if ranking is None:
        ranking = rank_fn(_rows_of_sentences(offsets, sentences))
    n_neurons = len(ranking.neuron_ids)
    rng = np.random.default_rng(seed)
    resolved = {str(k): resolve_k(k, n_neurons) for k in ks}
    ranks, tops = _resampled_ranks(rank_fn, offsets, sentences, rng, n_boot, n_neurons, resolved, job)
    low, median, high = np.percentile(ranks, [5, 50, 95], axis=0, method="nearest")
    ranking.confidence = {
        "method": "bootstrap_sentences",
        "n_boot": int(n_boot),
        "seed": int(seed),
        "interval": [5, 95],
        "rank_low": [int(r) for r in low],
        "rank_high": [int(r) for r in high],
        "rank_median": [int(r) for r in median],
        "k": {key: int(k) for key, k in resolved.items()},
        "stability": {key: mean_pairwise_jaccard(tops[key]) for key in resolved},
    }
    if consensus is not None:
        _consensus(ranking, ranks, consensus, consensus_k, resolved)
    return ranking


def method_agreement(rankings: Sequence[Ranking], k=50) -> dict:
    """Pairwise agreement of the top-k between rankings over the same neurons.

    Jaccard of the two top-k sets, and Kendall τ (τ-b) between the two rankings' ranks over the union of the
    two top-k sets (1 = same order, −1 = reversed). Returns names, the resolved k and two square tables.
    """
    from scipy.stats import kendalltau

    if len(rankings) < 2:
        raise ValueError("method_agreement needs at least two rankings")
    ids = rankings[0].neuron_ids
    for other in rankings[1:]:
        if other.neuron_ids != ids:
            raise ValueError(f"rankings {rankings[0].method!r} and {other.method!r} cover different neurons")
    names, seen = [], {}
    for r in rankings:
        seen[r.method] = seen.get(r.method, 0) + 1
        names.append(r.method if seen[r.method] == 1 else f"{r.method}#{seen[r.method]}")
    k_value = resolve_k(k, len(ids))
    m = len(rankings)
    jac, tau = np.eye(m), np.eye(m)
    ranks = [r.rank_of() for r in rankings]
    for i, j in itertools.combinations(range(m), 2):
        top_i, top_j = rankings[i].order[:k_value], rankings[j].order[:k_value]
        jac[i, j] = jac[j, i] = jaccard(top_i, top_j)
        union = np.union1d(top_i, top_j)
        value = kendalltau(ranks[i][union], ranks[j][union]).statistic if len(union) > 1 else 1.0
        tau[i, j] = tau[j, i] = float(value)
    return {"methods": names, "k": k_value, "jaccard": jac.tolist(), "kendall_tau": tau.tolist()}
