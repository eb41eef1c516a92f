"""One entry point for every single-model ranking over an activation store, with optional confidence.

The command line, and later the Celery tasks, call :func:`compute_ranking`; the methods themselves live in their
own modules (lca, univariate, probeless, baselines). Splits are by sentence (:mod:`splits`): supervised methods
that only need statistics (ANOVA, mutual information, probeless, mean difference) use the training sentences, as
methods.md §2.2 asks; the probe trains on train, selects on dev and reports test accuracy.

Confidence (methods.md §2.7) bootstraps the training sentences: ``bootstrap`` resamples (default 20 for the cheap
methods; the probe is retrained on each resample, so ask for fewer — 5 is a sensible number there).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .features import Features
from .ranking import Ranking
from .splits import split_by_sentence

METHODS = ("lca", "anova", "mutual_info", "probeless", "mean_difference", "variance")
LABELLED_METHODS = ("lca", "anova", "mutual_info", "probeless", "mean_difference")


def _rank_on_rows(method: str, features: Features, labels, label_names, rows, split, words, seed, options,
                  log=None) -> Ranking:
    from . import baselines, lca, probeless, univariate

    if method == "lca":
        return lca.linguistic_correlation(
            features, labels, label_names=label_names, train=rows, dev=split.dev, test=split.test,
            words=words, seed=seed, log=log, **options,
        )
    if method in ("anova", "mutual_info"):
        extra = {"seed": seed} if method == "mutual_info" else {}
        return univariate.univariate_ranking(features, labels, label_names, rows, method=method, **extra, **options)
    if method == "probeless":
        return probeless.probeless_ranking(features, labels, label_names, rows, **options)
    if method == "mean_difference":
        return baselines.mean_difference_ranking(features, labels, label_names, rows, **options)
    if method == "variance":
        return baselines.variance_ranking(features, rows, **options)
    raise ValueError(f"unknown ranking method {method!r}; choose one of {', '.join(METHODS)}")


def compute_ranking(
    store,
    method: str,
    *,
    neuron_sets=None,
    layers=None,
    seed: int = 0,
    bootstrap: int = 0,
    test_fraction: float = 0.2,
    dev_fraction: float = 0.1,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    **options,
) -> Ranking:
    """Rank the neurons of ``store`` (an :class:`~analysis.engine.store.ActivationStore`) with ``method``.

    ``neuron_sets`` / ``layers`` select the columns (default: every stored neuron). ``options`` go to the method
    (e.g. ``control=True`` or ``l1=...`` for lca). With ``bootstrap`` ≥ 2, ``ranking.confidence`` holds rank
    intervals and top-k stability over that many resamples of the training sentences.
    """
    from .confidence import bootstrap_confidence

    if method not in METHODS:
        raise ValueError(f"unknown ranking method {method!r}; choose one of {', '.join(METHODS)}")
    if method in LABELLED_METHODS and not store.label_names:
        raise ValueError(f"{method} needs labels, and this corpus has none; try 'variance'")
    say = log or (lambda text: None)
    features = store.features(neuron_sets, layers)
    split = split_by_sentence(store.sentence_offsets, test_fraction, dev_fraction, seed=seed)
    words = store.words if method == "lca" and options.get("control") else None
    say(f"{method}: {features.shape[1]} neurons, {len(split.train)} training words")

    ranking = _rank_on_rows(method, features, store.labels, store.label_names, split.train, split, words, seed,
                            options, log)
    ranking.params.update({
        "store_key": store.meta.get("key"),
        "model_sha256": store.meta.get("model", {}).get("sha256"),
        "corpus_sha256": store.meta.get("corpus_sha256"),
        "seed": seed,
        "split": {"test_fraction": test_fraction, "dev_fraction": dev_fraction, "by": "sentence"},
    })
    if bootstrap >= 2:
        train_sentences = np.unique(store.sentence_index[split.train])
        resample_options = dict(options)
        if method == "lca":
            # each resample keeps the main probe's chosen strength, so intervals reflect the data, not the tuning
            resample_options.update(l2=ranking.params.get("l2", options.get("l2")), control=False)

        def rank_fn(rows):
            return _rank_on_rows(method, features, store.labels, store.label_names, rows, split, None, seed,
                                 resample_options)

        say(f"confidence: {bootstrap} bootstrap resamples of the training sentences")
        bootstrap_confidence(rank_fn, store.sentence_offsets, n_boot=bootstrap, seed=seed, ranking=ranking,
                             sentences=train_sentences, progress=progress)
    return ranking
