"""The job contract for every long call of the rankings, the probe, statistics, probe ablation and cross-model:
progress reaches its total in one unit, and a cancel asked for mid-way stops the call within one chunk."""

import numpy as np
import pytest

from analysis.engine import crossmodel
from analysis.engine.baselines import binary_concept_ranking, mean_difference_ranking, variance_ranking
from analysis.engine.confidence import bootstrap_confidence
from analysis.engine.features import as_features
from analysis.engine.jobs import Cancelled, Job
from analysis.engine.lca import linguistic_correlation
from analysis.engine.methods import METHODS, compute_ranking
from analysis.engine.probe import train_probe
from analysis.engine.probe_ablation import probe_ablation
from analysis.engine.probeless import probeless_ranking
from analysis.engine.stats import compute_neuron_stats
from analysis.engine.univariate import anova_ranking, mutual_info_ranking
from tests.support.planted_store import planted_store

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(epochs=3, batch_size=64, lr=5e-2, l2=1e-3)
NAMES = ["a", "b", "c"]


class Watch:
    """A Job that keeps every progress report and, from the ``stop_after``-th report on, asks to stop."""

    def __init__(self, stop_after: int | None = None):
        self.reports, self.stop_after, self.stopped_at = [], stop_after, None

    def job(self) -> Job:
        return Job(on_progress=lambda *report: self.reports.append(report), should_stop=self._should_stop)

    def _should_stop(self) -> bool:
        if self.stop_after is None or len(self.reports) < self.stop_after:
            return False
        if self.stopped_at is None:
            self.stopped_at = len(self.reports)
        return True

    @property
    def chunks_after_stop(self) -> int:
        return len(self.reports) - self.stopped_at


def planted(n=400, d=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    for c in range(3):
        x[labels == c, c] += 3.0
    return x, labels


X, Y = planted()
FEATURES = as_features(X)
OFFSETS = np.arange(0, 401, 8)
OTHER = as_features(X[:, ::-1] + np.random.default_rng(1).normal(size=X.shape).astype(np.float32), layer=1)
SMALL_BLOCKS = 8 * 12 * 4  # bytes: cross-model blocks of 4 neurons, statistics blocks of a few columns


def trained_probe():
    return linguistic_correlation(FEATURES, Y, label_names=NAMES, train=np.arange(300), return_probe=True,
                                  **FAST)


LCA_RANKING, PROBE = trained_probe()

CALLS = {
    "train_probe": ("epochs", lambda job: train_probe(FEATURES, Y, label_names=NAMES, train=np.arange(300),
                                                      dev=np.arange(300, 350), epochs=2, batch_size=64, job=job)),
    "lca with control": ("epochs", lambda job: linguistic_correlation(
        FEATURES, Y, label_names=NAMES, train=np.arange(300), test=np.arange(300, 400), control=True,
        words=[f"w{i % 30}" for i in range(400)], job=job, **FAST)),
    "anova": ("rows", lambda job: anova_ranking(FEATURES, Y, NAMES, batch_size=50, job=job)),
    "mutual_info": ("neurons", lambda job: mutual_info_ranking(FEATURES, Y, NAMES, max_bytes=4 * 400 * 3,
                                                               per_label=False, job=job)),
    "probeless": ("rows", lambda job: probeless_ranking(FEATURES, Y, NAMES, batch_size=50, job=job)),
    "mean_difference": ("rows", lambda job: mean_difference_ranking(FEATURES, Y, NAMES, batch_size=50, job=job)),
    "variance": ("rows", lambda job: variance_ranking(FEATURES, batch_size=50, job=job)),
    "binary concept": ("neurons", lambda job: binary_concept_ranking(FEATURES, "a", Y, NAMES, max_bytes=40 * 400 * 3,
                                                                     job=job)),
    "bootstrap": ("resamples", lambda job: bootstrap_confidence(
        lambda rows: anova_ranking(FEATURES, Y, NAMES, rows), OFFSETS, n_boot=5, job=job)),
    "neuron statistics": ("neurons", lambda job: compute_neuron_stats(
        FEATURES, [f"w{i % 30}" for i in range(400)], OFFSETS, Y, NAMES, max_bytes=30_000, job=job)),
    "probe ablation": ("evaluations", lambda job: probe_ablation(
        PROBE, FEATURES, Y, LCA_RANKING.order, train=np.arange(300), test=np.arange(300, 400), percents=(25, 50),
        random_seeds=2, job=job)),
    "maxcorr and mincorr": ("row passes", lambda job: crossmodel.maxcorr_mincorr_rankings(
        [FEATURES, OTHER], max_bytes=SMALL_BLOCKS, job=job)),
    "linreg": ("row passes", lambda job: crossmodel.linreg_rankings([FEATURES, OTHER], max_bytes=SMALL_BLOCKS,
                                                                    job=job)),
    "svcca": ("row passes", lambda job: crossmodel.svcca_rankings([FEATURES, OTHER], max_bytes=SMALL_BLOCKS,
                                                                  job=job)),
    "all cross-model methods": ("row passes", lambda job: crossmodel.crossmodel_rankings(
        [FEATURES, OTHER], max_bytes=SMALL_BLOCKS, job=job)),
}


def check_contract(run, unit):
    watch = Watch()
    run(watch.job())
    dones = [done for done, _, _ in watch.reports]
    assert len(watch.reports) >= 3, watch.reports  # enough chunks to stop mid-way
    assert {u for _, _, u in watch.reports} == {unit}
    (total,) = {t for _, t, _ in watch.reports}
    assert dones == sorted(dones) and dones[-1] == total

    stopping = Watch(stop_after=len(watch.reports) // 2)
    with pytest.raises(Cancelled):
        run(stopping.job())
    assert stopping.chunks_after_stop <= 1
    assert len(stopping.reports) < len(watch.reports)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_long_call_reports_progress_to_its_total_and_stops_within_a_chunk(name):
    unit, run = CALLS[name]
    check_contract(run, unit)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return planted_store(tmp_path_factory.mktemp("stores") / "s", n_sentences=120)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_compute_ranking_reports_in_the_registered_unit(store, method):
    options = dict(FAST, batch_size=64) if method == "lca" else {"batch_size": 100}
    if method == "mutual_info":
        options = {"max_bytes": 4 * 700 * 3}
    check_contract(lambda job: compute_ranking(store, method, job=job, **options), METHODS[method].unit)


@pytest.mark.parametrize("method, unit", [("lca", "epochs"), ("probeless", "resamples")])
def test_compute_ranking_with_bootstrap_reports_one_progress(store, method, unit):
    options = FAST if method == "lca" else {}
    check_contract(lambda job: compute_ranking(store, method, bootstrap=3, job=job, **options), unit)


def test_part_reports_nested_progress_as_a_share_of_the_outer_total_and_keeps_log_and_cancel():
    watch, lines = Watch(stop_after=3), []
    outer = Job(on_progress=lambda *report: watch.reports.append(report), on_log=lines.append,
                should_stop=watch._should_stop)
    second = outer.part(10, 30)
    second.progress(2, 20, "epochs")
    second.log("nested line")
    assert watch.reports == [(12, 30, "epochs")] and lines == ["nested line"]
    second.check_cancelled()  # one report so far: not stopped yet
    outer.part(0, 30).progress(1, 10, "epochs")
    outer.progress(3, 30, "epochs")
    with pytest.raises(Cancelled):
        second.check_cancelled()
    assert Job().part(5, 10) == Job()  # a silent job stays silent
