import numpy as np
import pytest

from analysis.engine.crossmodel import (correlation_matrix, crossmodel_rankings, erase_directions,
                                        linreg_rankings, maxcorr_mincorr_rankings, svcca_pair)
from analysis.engine.features import Features, as_features
from analysis.engine.neurons import layer_neurons


def two_models(n=2000, seed=0):
    """Model B copies three units of A: with noise, with a sign flip and scaled."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 30)).astype(np.float32)
    b = rng.normal(size=(n, 25)).astype(np.float32)
    b[:, 3] = a[:, 10] + 0.3 * rng.normal(size=n)
    b[:, 8] = -2.0 * a[:, 20] + 0.3 * rng.normal(size=n)
    b[:, 15] = 5.0 * a[:, 2] + 1.0 * rng.normal(size=n)
    return a, b


def test_blocked_correlations_equal_corrcoef():
    a, b = two_models(n=300)
    a[:, 0] += 500.0  # offset must not hurt precision
    fa, fb = as_features(a), as_features(b.astype(np.float16), layer=1)
    blocked = correlation_matrix(fa, fb, max_bytes=8 * 25 * 4)  # blocks of 4 rows of the matrix
    expected = np.corrcoef(a.T.astype(np.float64), b.astype(np.float16).astype(np.float64).T)[:30, 30:]
    np.testing.assert_allclose(blocked, expected, atol=1e-5)


def test_constant_neuron_has_no_correlation_and_ranks_last():
    a, b = two_models(n=500)
    a[:, 4] = 1.0
    rankings = maxcorr_mincorr_rankings([as_features(a), as_features(b)])
    assert np.isnan(rankings["maxcorr"][0].scores[4])
    assert rankings["maxcorr"][0].order[-1] == 4


def test_maxcorr_and_mincorr_rank_copied_units_first():
    a, b = two_models()
    rankings = maxcorr_mincorr_rankings([as_features(a), as_features(b, layer=2)], model_names=["A", "B"],
                                        max_bytes=8 * 25 * 7)
    for method in ("maxcorr", "mincorr"):
        ranking_a, ranking_b = rankings[method]
        assert set(ranking_a.order[:3]) == {10, 20, 2}
        assert set(ranking_b.order[:3]) == {3, 8, 15}
    assert rankings["maxcorr"][0].params["best_correlate"]["B"][20] == "L2:8"
    assert rankings["maxcorr"][1].params["best_correlate"]["A"][8] == "L0:20"


def test_mincorr_needs_a_correlate_in_every_model():
    a, b = two_models()
    c = np.random.default_rng(5).normal(size=(len(a), 10)).astype(np.float32)
    c[:, 0] = a[:, 10] + 0.3 * np.random.default_rng(6).normal(size=len(a))
    models = [as_features(a), as_features(b), as_features(c)]
    rankings = maxcorr_mincorr_rankings(models)
    assert rankings["mincorr"][0].order[0] == 10  # only unit 10 has a copy in both B and C
    assert rankings["mincorr"][0].scores[20] < 0.2 < rankings["maxcorr"][0].scores[20]


def test_linreg_and_svcca_rank_copied_units_first():
    a, b = two_models()
    fa, fb = as_features(a), as_features(b)
    linreg = linreg_rankings([fa, fb])
    assert set(linreg[0].order[:3]) == {10, 20, 2}
    assert set(linreg[1].order[:3]) == {3, 8, 15}
    assert linreg[0].scores[10] < 0.2 < 0.9 < linreg[0].scores[0]
    all_methods = crossmodel_rankings([fa, fb], methods=("svcca",))
    assert set(all_methods["svcca"][0].order[:3]) == {10, 20, 2}
    assert set(all_methods["svcca"][1].order[:3]) == {3, 8, 15}


def test_svcca_basis_is_orthonormal_and_erasing_removes_the_shared_signal():
    a, b = two_models()
    result = svcca_pair(as_features(a), as_features(b))
    assert (result.correlations[:3] > 0.9).all() and result.correlations[3] < 0.3
    np.testing.assert_allclose(result.basis_a @ result.basis_a.T, np.eye(len(result.basis_a)), atol=1e-8)
    erased = erase_directions(a.astype(np.float64), result.basis_a, [0, 1, 2])
    remaining = np.corrcoef(erased.T, b.T)[:30, 30:]
    assert np.abs(remaining[[10, 20, 2]][:, [3, 8, 15]]).max() < 0.3
    # equals ((h·Bᵀ)·M)·B with B completed to a full orthonormal basis
    keep = np.ones(30)
    keep[:3] = 0
    q, _ = np.linalg.qr(np.concatenate([result.basis_a.T, np.random.default_rng(0).normal(size=(30, 30))], 1))
    basis = q[:, :30].T
    basis[: len(result.basis_a)] = result.basis_a
    np.testing.assert_allclose(((a @ basis.T) * keep) @ basis, erased, atol=1e-4)


def test_deterministic_and_input_checks():
    a, b = two_models(n=400)
    first = crossmodel_rankings([as_features(a), as_features(b)], methods=("maxcorr", "linreg"))
    second = crossmodel_rankings([as_features(a), as_features(b)], methods=("maxcorr", "linreg"))
    for method in first:
        np.testing.assert_array_equal(first[method][0].scores, second[method][0].scores)
    with pytest.raises(ValueError, match="same words"):
        crossmodel_rankings([as_features(a), as_features(b[:-1])])
    with pytest.raises(ValueError, match="at least 2 models"):
        crossmodel_rankings([as_features(a)])
    with pytest.raises(ValueError, match="unknown cross-model"):
        crossmodel_rankings([as_features(a), as_features(b)], methods=("cka",))


def test_multi_block_features():
    a, b = two_models(n=600)
    fa = Features([a[:, :15], a[:, 15:]], layer_neurons("hidden", 1, 15) + layer_neurons("hidden", 2, 15))
    ranking = maxcorr_mincorr_rankings([fa, as_features(b)])["maxcorr"][0]
    assert {n.label for n in ranking.top(3)} == {"L1:10", "L2:5", "L1:2"}
