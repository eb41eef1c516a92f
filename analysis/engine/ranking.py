"""The result every ranking method returns, in one shape, serialisable to JSON for the database."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .neurons import NeuronId


def order_by_score(scores: np.ndarray, descending: bool = True) -> np.ndarray:
    """Indices sorted by score; ties broken by neuron position (i.e. by neuron id), so orderings reproduce."""
    scores = np.asarray(scores, dtype=np.float64)
    key = -scores if descending else scores
    key = np.where(np.isnan(key), np.inf, key)  # NaN scores (constant neurons) go last
    return np.lexsort((np.arange(len(scores)), key))


def ranking_from_scores(method: str, neuron_ids, scores, per_label_scores: dict | None = None, *,
                        descending: bool = True, params: dict | None = None) -> "Ranking":
    """A Ranking ordered by ``scores``, with each label's sub-ranking ordered by its own scores."""
    scores = np.asarray(scores, dtype=np.float64)
    return Ranking(
        method=method,
        neuron_ids=list(neuron_ids),
        order=order_by_score(scores, descending),
        scores=scores,
        per_label={label: order_by_score(values, descending) for label, values in (per_label_scores or {}).items()},
        params=dict(params or {}),
    )


@dataclass
class Ranking:
    method: str
    neuron_ids: list[NeuronId]
    order: np.ndarray  # positions into neuron_ids, best first; covers every neuron
    scores: np.ndarray  # one per neuron, in neuron_ids order (higher = more important unless noted in params)
    per_label: dict[str, np.ndarray] = field(default_factory=dict)  # label -> positions, best first
    params: dict = field(default_factory=dict)  # method parameters + data hashes it was computed from
    metrics: dict = field(default_factory=dict)  # e.g. probe accuracies, selectivity
    confidence: dict | None = None  # filled by confidence.bootstrap_confidence

    def top(self, k: int) -> list[NeuronId]:
        return [self.neuron_ids[i] for i in self.order[:k]]

    def rank_of(self) -> np.ndarray:
        """rank (0 = best) of each neuron, in neuron_ids order."""
        ranks = np.empty(len(self.order), dtype=np.int64)
        ranks[self.order] = np.arange(len(self.order))
        return ranks

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "neurons": [n.label for n in self.neuron_ids],
            "order": [int(i) for i in self.order],
            "scores": [None if not np.isfinite(s) else float(s) for s in np.asarray(self.scores, dtype=float)],
            "per_label": {label: [int(i) for i in order] for label, order in self.per_label.items()},
            "params": self.params,
            "metrics": self.metrics,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Ranking":
        return cls(
            method=data["method"],
            neuron_ids=[NeuronId.parse(label) for label in data["neurons"]],
            order=np.asarray(data["order"], dtype=np.int64),
            scores=np.asarray([np.nan if s is None else s for s in data["scores"]], dtype=np.float64),
            per_label={label: np.asarray(o, dtype=np.int64) for label, o in data["per_label"].items()},
            params=data.get("params", {}),
            metrics=data.get("metrics", {}),
            confidence=data.get("confidence"),
        )
