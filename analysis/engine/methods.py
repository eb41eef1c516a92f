"""The registry of single-model ranking methods, and :func:`compute_ranking`, the one entry point to them.

:data:`METHODS` is one table from a method's name to the function that computes it, the unit its progress is
counted in, whether it needs labels, its default number of bootstrap resamples, the options a run may set
(:class:`~analysis.engine.options.Option`) and what its score means. :data:`BOOTSTRAP` and :data:`CONSENSUS`
declare the two settings every method takes. The command line, the pipeline, the run request's checks, the API
schema and the new-analysis form list and call methods through it; the methods themselves live in their own
modules (lca, univariate, probeless, baselines). The name requested is the name recorded:
``compute_ranking(store, "anova").method == "anova"``.

Splits are by sentence (:mod:`splits`): supervised methods that only need statistics (ANOVA, mutual information,
probeless, mean difference) use the training sentences, as methods.md §2.2 asks; the probe trains on train,
selects on dev and reports test accuracy. With ``eval_store`` (another corpus's store, same neurons) the probe is
also scored there, labels matched by name (``metrics["held_out"]``).

Confidence (methods.md §2.7) bootstraps the training sentences: ``bootstrap`` resamples (20 by default for the
cheap methods, none for mutual information unless asked; the probe is retrained on each resample, so 5 there).

Job contract: one progress per call. Without bootstrap it is the method's own unit. With bootstrap, LCA counts
epochs over every fit (the main fits, then one per resample); the other methods count resamples.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import baselines, lca, probeless, univariate
from .confidence import CONSENSUS_METHODS, bootstrap_confidence
from .features import Features
from .jobs import Job, as_job
from .options import Option
from .probe import L2_GRID, LabelledWords
from .ranking import Ranking
from .splits import Split, split_by_sentence


@dataclass(frozen=True)
class RankingInput:
    """What any method may use: the selected neurons of one store, its labels, the split and the seed."""

    features: Features
    labels: np.ndarray
    label_names: list[str]
    split: Split
    words: list[str] | None  # only for LCA's control task
    seed: int


@dataclass(frozen=True)
class Method:
    name: str
    rank: Callable[[RankingInput, np.ndarray, Job, dict], Ranking]  # (input, training rows, job, options)
    unit: str  # what its progress counts without bootstrap
    needs_labels: bool
    bootstrap: int  # default number of resamples for confidence
    description: str
    options: tuple[Option, ...] = ()  # what a run may set (passed to ``rank`` as ``options``)
    score: str = ""  # what ``Ranking.scores`` holds (higher ranks first)


# Resamples: 1,000 is far past where rank intervals settle (methods.md §2.7 asks for 20 for the cheap methods);
# the run's cost in compute-seconds (analysis.runs.estimates) bounds what one person may ask for below that.
MAX_BOOTSTRAP = 1000
BOOTSTRAP = Option("bootstrap", int, None, "the number of resamples for confidence intervals", minimum=2,
                   maximum=MAX_BOOTSTRAP, off=0, label="Resamples")  # the default is each method's own
CONSENSUS = Option("consensus", str, None, "orders neurons over the bootstrap resamples", choices=CONSENSUS_METHODS)
CONSENSUS_MIN_BOOTSTRAP = 4  # its stability is split-half (confidence.bootstrap_confidence refuses fewer)

CONTROL = Option("control", bool, False, "also train the probe on a control task (one fixed label per word "
                 "type) and report selectivity", label="Control task (selectivity)")
L1 = Option("l1", float, lca.DEFAULT_L1, "the probe's L1 penalty: higher is sparser",
            minimum=0, maximum=1, label="λ1 (sparsity)")
L2 = Option("l2", float, None, f"the probe's L2 penalty; left out: chosen on the dev split from "
            f"{min(L2_GRID):g}–{max(L2_GRID):g}", minimum=0, maximum=1, label="λ2 (weight decay)")
_WEIGHT_MASS = "1 − the weight mass at which the neuron enters the probe's top neurons for some label"


def _lca(data: RankingInput, rows, job: Job, options: dict) -> Ranking:
    return lca.linguistic_correlation(data.features, data.labels, label_names=data.label_names, train=rows,
                                      dev=data.split.dev, test=data.split.test, words=data.words, seed=data.seed,
                                      job=job, **options)


def _lca_dense(data: RankingInput, rows, job: Job, options: dict) -> Ranking:
    return _lca(data, rows, job, {"l1": lca.DENSE_L1, "method": "lca_dense", **options})


def _anova(data: RankingInput, rows, job: Job, options: dict) -> Ranking:
    return univariate.anova_ranking(data.features, data.labels, data.label_names, rows, job=job, **options)


def _mutual_info(data: RankingInput, rows, job: Job, options: dict) -> Ranking:
    return univariate.mutual_info_ranking(data.features, data.labels, data.label_names, rows, seed=data.seed,
                                          job=job, **options)


def _probeless(data: RankingInput, rows, job: Job, options: dict) -> Ranking:
    return probeless.probeless_ranking(data.features, data.labels, data.label_names, rows, job=job, **options)


def _probeless_raw(data: RankingInput, rows, job: Job, options: dict) -> Ranking:
    return probeless.probeless_ranking(data.features, data.labels, data.label_names, rows, standardise=False,
                                       job=job, **options)


def _mean_difference(data: RankingInput, rows, job: Job, options: dict) -> Ranking:
    return baselines.mean_difference_ranking(data.features, data.labels, data.label_names, rows, job=job,
                                             **options)


def _mean_difference_raw(data: RankingInput, rows, job: Job, options: dict) -> Ranking:
    return baselines.mean_difference_ranking(data.features, data.labels, data.label_names, rows,
                                             standardise=False, job=job, **options)


def _variance(data: RankingInput, rows, job: Job, options: dict) -> Ranking:
    return baselines.variance_ranking(data.features, rows, job=job, **options)


METHODS: dict[str, Method] = {method.name: method for method in (
    Method("lca", _lca, "epochs", True, 5,
           f"elastic-net probe (λ1 {lca.DEFAULT_L1:g}: sparse, per-label neuron counts readable); neurons by weight mass",
           options=(L1, L2, CONTROL), score=_WEIGHT_MASS),
    Method("anova", _anova, "rows", True, 20, "ANOVA F of each neuron against the labels",
           score="the ANOVA F statistic of the neuron's activations grouped by label"),
    Method("mutual_info", _mutual_info, "neurons", True, 0,
           "binned mutual information with the labels (a few seconds a layer; each bootstrap resample costs "
           "as much again)", score="the mutual information of the binned activations with the labels"),
    Method("probeless", _probeless, "rows", True, 20,
           "differences between label means of standardised activations (scale-free; recommended)",
           score="the sum of absolute differences between label means, in units of the neuron's std"),
    Method("probeless_raw", _probeless_raw, "rows", True, 20,
           "differences between label means of raw activations, as published (follows each unit's scale)",
           score="the sum of absolute differences between label means of raw activations"),
    Method("mean_difference", _mean_difference, "rows", True, 20,
           "distance of each label mean from the mean, in units of the neuron's std",
           score="the sum over labels of |label mean − mean|, in units of the neuron's std"),
    Method("mean_difference_raw", _mean_difference_raw, "rows", True, 20,
           "distance of each label mean from the mean, raw activations",
           score="the sum over labels of |label mean − mean| of raw activations"),
    Method("variance", _variance, "rows", False, 20, "activation variance (no labels)",
           score="the variance of the neuron's activations"),
    Method("lca_dense", _lca_dense, "epochs", True, 5,
           f"elastic-net probe with the dense published λ1 {lca.DENSE_L1:g}; neurons by weight mass",
           options=(L2, CONTROL), score=_WEIGHT_MASS),
)}


PROBE_METHODS = ("lca", "lca_dense")  # the methods that train a probe (eval corpus, control task, epochs)


def method_named(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown ranking method {name!r}; choose one of {', '.join(METHODS)}") from None


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
    eval_store=None,
    consensus: str | None = None,
    return_probe: bool = False,
    job: Job | None = None,
    **options,
):
    """Rank the neurons of ``store`` (an :class:`~analysis.engine.store.ActivationStore`) with ``method``.

    ``neuron_sets`` / ``layers`` select the columns (default: every stored neuron). ``options`` go to the method
    (e.g. ``control=True`` or ``l1=...`` for lca). With ``bootstrap`` ≥ 2, ``ranking.confidence`` holds rank
    intervals and top-k stability over that many resamples of the training sentences. ``eval_store``: a store
    of another corpus (same model and neurons) on which the probe is scored too (lca only). ``consensus``
    (``"mean_rank"`` or ``"selection_frequency"``, needs ``bootstrap`` ≥ 4): the order is the resamples'
    consensus, with its own split-half stability in ``ranking.confidence["consensus"]``
    (:func:`confidence.bootstrap_confidence`).

    Returns the Ranking; with ``return_probe`` (a probe method, no bootstrap) ``(ranking, probe, split)``: the
    trained probe and the split it was trained and tested on, for probe ablation.
    """
    spec = _checked_method(store, method, bootstrap, consensus, eval_store, return_probe)
    job = as_job(job)
    features = store.features(neuron_sets, layers)
    split = split_by_sentence(store.sentence_offsets, test_fraction, dev_fraction, seed=seed)
    words = store.words if options.get("control") else None
    data = RankingInput(features, store.labels, store.label_names, split, words, seed)
    job.log(f"{method}: {features.shape[1]} neurons, {len(split.train)} training words")
    main_options = dict(options)
    if eval_store is not None:
        main_options["held_out"] = LabelledWords(eval_store.features(neuron_sets, layers), eval_store.labels,
                                                 eval_store.label_names)

    if return_probe:
        ranking, probe = spec.rank(data, split.train, job, {**main_options, "return_probe": True})
    elif bootstrap < 2:
        ranking = spec.rank(data, split.train, job, main_options)
    else:
        ranking = _with_confidence(spec, data, store, bootstrap, job, main_options, options, consensus)
    ranking.params.update({
        "store_key": store.meta.get("key"),
        "model_sha256": store.meta.get("model", {}).get("sha256"),
        "corpus_sha256": store.meta.get("corpus_sha256"),
        "seed": seed,
        "split": {"test_fraction": test_fraction, "dev_fraction": dev_fraction, "by": "sentence"},
    })
    if eval_store is not None:
        ranking.params["eval_store_key"] = eval_store.meta.get("key")
        ranking.params["eval_corpus_sha256"] = eval_store.meta.get("corpus_sha256")
    return (ranking, probe, split) if return_probe else ranking


def _checked_method(store, method: str, bootstrap: int, consensus, eval_store, return_probe: bool) -> Method:
    """The method ``compute_ranking`` was asked for, once its arguments fit together (else ``ValueError``)."""
    if return_probe and (method not in PROBE_METHODS or bootstrap >= 2):
        raise ValueError(f"return_probe needs a method that trains one probe ({', '.join(PROBE_METHODS)}) and no "
                         f"bootstrap; got {method} with bootstrap {bootstrap}")
    if consensus is not None and consensus not in CONSENSUS.choices:
        raise ValueError(f"consensus must be one of {', '.join(CONSENSUS.choices)}, not {consensus!r}")
    if consensus is not None and bootstrap < CONSENSUS_MIN_BOOTSTRAP:
        raise ValueError(f"a consensus ranking is built from bootstrap resamples: pass "
                         f"bootstrap={CONSENSUS_MIN_BOOTSTRAP} or more (got {bootstrap})")
    spec = method_named(method)
    if spec.needs_labels and not store.label_names:
        raise ValueError(f"{method} needs labels, and this corpus has none; try 'variance'")
    if eval_store is not None and method not in PROBE_METHODS:
        raise ValueError(f"{method} trains no probe, so there is nothing to score on another corpus; use lca")
    if not BOOTSTRAP.accepts(bootstrap):
        raise ValueError(f"bootstrap must be 0 (no confidence) or at least 2 resamples, not {bootstrap}")
    if eval_store is not None:
        _check_comparable(store, eval_store)
    return spec


def _check_comparable(store, eval_store) -> None:
    """A probe is scored on another corpus only through the same model and the same kind of label."""
    def facts(s):
        return s.meta.get("model", {}).get("sha256"), s.meta.get("params", {}).get("label_column")

    (model, column), (eval_model, eval_column) = facts(store), facts(eval_store)
    if model and eval_model and model != eval_model:
        raise ValueError("the eval corpus's store was extracted from another model; extract it with the same one")
    if column != eval_column:
        raise ValueError(f"the eval corpus is labelled by {eval_column or 'nothing'}, the training corpus by "
                         f"{column or 'nothing'}: use the same label column")


def _lca_resample_options(options: dict, l2) -> dict:
    # each resample keeps the main probe's chosen strength, so intervals reflect the data, not the tuning
    return {**options, "l2": l2, "control": False}


def _with_confidence(spec: Method, data: RankingInput, store, bootstrap: int, job: Job, main_options: dict,
                     options: dict, consensus: str | None = None) -> Ranking:
    """The ranking on the training rows, then ``bootstrap`` resamples of the training sentences."""
    sentences = np.unique(store.sentence_index[data.split.train])
    resample_data = RankingInput(data.features, data.labels, data.label_names, data.split, None, data.seed)
    job.log(f"confidence: {bootstrap} bootstrap resamples of the training sentences")
    if spec.name not in PROBE_METHODS:
        ranking = spec.rank(data, data.split.train, job.without_progress(), main_options)
        return bootstrap_confidence(
            lambda rows: spec.rank(resample_data, rows, job.without_progress(), options), store.sentence_offsets,
            n_boot=bootstrap, seed=data.seed, ranking=ranking, sentences=sentences, job=job, consensus=consensus,
        )  # fmt: skip
    # LCA: one count of epochs over the main fits and every resample's single fit
    main_epochs = lca.planned_epochs(**options)
    resample_epochs = lca.planned_epochs(**_lca_resample_options(options, l2=0.0))  # a fixed L2: one fit
    total = main_epochs + bootstrap * resample_epochs
    ranking = spec.rank(data, data.split.train, job.part(0, total), main_options)
    resample_options = _lca_resample_options(options, ranking.params["l2"])
    resample_number = itertools.count()

    def rank_resample(rows):
        part = job.part(main_epochs + next(resample_number) * resample_epochs, total)
        return spec.rank(resample_data, rows, part, resample_options)

    return bootstrap_confidence(rank_resample, store.sentence_offsets, n_boot=bootstrap, seed=data.seed,
                                ranking=ranking, sentences=sentences, job=job.without_progress(),
                                consensus=consensus)
