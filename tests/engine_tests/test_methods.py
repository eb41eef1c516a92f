"""compute_ranking and the method registry, on small real stores with a planted signal."""

import pytest

from analysis.engine.methods import METHODS, compute_ranking
from analysis.engine.probe import L2_GRID
from tests.support.planted_store import SIGNAL_UNIT, planted_store

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST_LCA = dict(epochs=4, batch_size=32, lr=5e-2)
PLANTED = {SIGNAL_UNIT[name] for name in ("ADJ", "DET", "NOUN", "VERB")}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return planted_store(tmp_path_factory.mktemp("stores") / "train")


class Recorder:
    """A Job's callbacks that keep what they were told."""

    def __init__(self):
        self.progress, self.lines = [], []

    def job(self):
        from analysis.engine.jobs import Job

        return Job(on_progress=lambda done, total, unit: self.progress.append((done, total, unit)),
                   on_log=self.lines.append)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_registered_method_records_the_name_it_was_asked_for(store, method):
    options = dict(FAST_LCA, l2=1e-3) if method == "lca" else {}
    ranking = compute_ranking(store, method, layers=[1], **options)
    assert ranking.method == method
    assert len(ranking.order) == 10 and ranking.params["store_key"] == "planted"
    if METHODS[method].needs_labels and method != "mutual_info":  # MI of weak units is noisy on 250 words
        assert set(ranking.order[:4].tolist()) == PLANTED


def test_lca_branch_chooses_l2_on_dev_and_finds_the_planted_units(store):
    recorder = Recorder()
    ranking = compute_ranking(store, "lca", layers=[1], job=recorder.job(), **FAST_LCA)
    assert set(ranking.order[:4].tolist()) == PLANTED
    assert ranking.params["l2"] in L2_GRID and set(ranking.metrics["l2_selection"]) == {repr(v) for v in L2_GRID}
    assert ranking.metrics["test_accuracy"] > 0.9
    # no bootstrap: the probe's epochs are the progress (one count over the grid fits and the refit)
    assert recorder.progress[-1] == ((len(L2_GRID) + 1) * 4, (len(L2_GRID) + 1) * 4, "epochs")
    assert ranking.confidence is None


def test_lca_with_bootstrap_and_control_reports_one_count_of_epochs_and_keeps_the_chosen_l2(store):
    recorder = Recorder()
    ranking = compute_ranking(store, "lca", layers=[1], bootstrap=3, control=True, job=recorder.job(), **FAST_LCA)
    main_epochs = (len(L2_GRID) + 1) * 4 + 4  # L2 grid + refit, then the control probe
    total = main_epochs + 3 * 4  # one fit per resample
    assert {t for _, t, _ in recorder.progress} == {total} and {u for _, _, u in recorder.progress} == {"epochs"}
    assert [d for d, _, _ in recorder.progress] == list(range(1, total + 1))
    confidence = ranking.confidence
    assert confidence["n_boot"] == 3
    assert max(confidence["rank_high"][unit] for unit in PLANTED) <= 3  # the planted units stay on top
    chosen = f"(l2={ranking.params['l2']:g})"
    resample_epoch_lines = [line for line in recorder.lines if line.startswith("epoch ")][-3 * 4:]
    assert all(chosen in line for line in resample_epoch_lines)  # resamples train at the main fit's L2
    assert sum("control task" in line for line in recorder.lines) == 1  # control only for the main probe
    assert ranking.metrics["selectivity"] is not None


def test_cheap_method_with_bootstrap_counts_resamples(store):
    recorder = Recorder()
    ranking = compute_ranking(store, "anova", layers=[1], bootstrap=4, job=recorder.job())
    assert recorder.progress == [(b, 4, "resamples") for b in range(1, 5)]
    assert ranking.confidence["n_boot"] == 4 and ranking.method == "anova"


def test_bad_requests_are_refused(store, tmp_path):
    with pytest.raises(ValueError, match="unknown ranking method 'chi2'; choose one of lca, anova"):
        compute_ranking(store, "chi2")
    with pytest.raises(ValueError, match="bootstrap must be 0"):
        compute_ranking(store, "anova", bootstrap=1)
    with pytest.raises(ValueError, match="anova trains no probe"):
        compute_ranking(store, "anova", eval_store=store)


def test_return_probe_gives_the_probe_and_the_split_it_was_trained_and_tested_on(store):
    from analysis.engine.probe import evaluate_probe
    from analysis.engine.splits import split_by_sentence

    ranking, probe, split = compute_ranking(store, "lca", layers=[1], seed=3, return_probe=True, **FAST_LCA, l2=1e-3)
    expected = split_by_sentence(store.sentence_offsets, 0.2, 0.1, seed=3)
    for part in ("train", "dev", "test"):
        assert getattr(split, part).tolist() == getattr(expected, part).tolist()
    features = store.features(None, [1])
    metrics = evaluate_probe(probe, features, store.labels, test=split.test)
    assert metrics["test_accuracy"] == pytest.approx(ranking.metrics["test_accuracy"])
    assert ranking.params["seed"] == 3 and list(probe.neuron_ids) == list(features.neuron_ids)
    for method, bootstrap in (("anova", 0), ("lca", 2)):
        with pytest.raises(ValueError, match="return_probe needs a method that trains one probe"):
            compute_ranking(store, method, layers=[1], bootstrap=bootstrap, return_probe=True, **FAST_LCA)
