"""Features: rows read from column blocks (the store's memmaps) in any order, without keeping what was read."""

import numpy as np
import psutil
import pytest

from analysis.engine.features import Features, as_features
from analysis.engine.neurons import NeuronId, layer_neurons


def _two_blocks(rows=50):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(rows, 3)).astype(np.float16)
    b = rng.normal(size=(rows, 2)).astype(np.float16)
    return a, b, Features([a, b], layer_neurons("hidden", 0, 3) + layer_neurons("hidden", 1, 2))


def test_rows_in_any_order_with_repeats_equal_plain_indexing():
    a, b, features = _two_blocks()
    expected = np.concatenate([a, b], axis=1).astype(np.float32)
    index = np.array([7, 3, 3, 49, 0, 7])
    np.testing.assert_array_equal(features.rows(index), expected[index])
    np.testing.assert_array_equal(features.rows(slice(10, 20)), expected[10:20])
    assert features.rows(index).dtype == np.float32


def test_as_features_wraps_one_in_memory_layer():
    features = as_features(np.arange(6).reshape(3, 2), "mlp", 4)
    assert features.neuron_ids == [NeuronId("mlp", 4, 0), NeuronId("mlp", 4, 1)]
    np.testing.assert_array_equal(features.rows(np.array([2])), [[4.0, 5.0]])


def test_column_subset_reads_only_its_columns():
    a, b, features = _two_blocks()
    subset = features.select([4, 0])
    assert subset.neuron_ids == [NeuronId("hidden", 1, 1), NeuronId("hidden", 0, 0)]
    np.testing.assert_array_equal(subset.rows(np.array([5, 2])),
                                  np.stack([b[[5, 2], 1], a[[5, 2], 0]], axis=1).astype(np.float32))


def test_blocks_must_agree_on_rows_and_ids():
    with pytest.raises(ValueError, match="disagree on the number of words"):
        Features([np.zeros((3, 2)), np.zeros((4, 2))], layer_neurons("hidden", 0, 4))
    with pytest.raises(ValueError, match="4 feature columns but 3 neuron ids"):
        Features([np.zeros((3, 4))], layer_neurons("hidden", 0, 3))


def _memmapped_ones(tmp_path) -> Features:
    """256 MiB of float16 ones (65,536 words × 2,048 units) in a .npy file, read through a memory map."""
    path = tmp_path / "layer.npy"
    block = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(65536, 2048))
    block[:] = 1.0
    block.flush()
    del block
    return Features([np.load(path, mmap_mode="r")], layer_neurons("hidden", 0, 2048))


def test_a_pass_over_a_memmap_store_does_not_stay_resident(tmp_path):
    """Reading 256 MiB of float16 through Features leaves the process's memory where it was."""
    features = _memmapped_ones(tmp_path)
    process = psutil.Process()
    before = process.memory_info().rss
    total = 0.0
    for _, rows in features.iter_rows(batch_size=2048):
        total += float(rows[:, 0].sum())
    grown = process.memory_info().rss - before
    assert total == 65536
    assert grown < 64 * 2**20, f"resident memory grew by {grown / 2**20:.0f} MiB while streaming 256 MiB"


def test_float16_column_blocks_of_a_memmap_store_do_not_stay_resident(tmp_path):
    """Read in the store's own dtype, a block is still a copy: the store's pages are released, not kept."""
    from analysis.engine.features import column_blocks

    features = _memmapped_ones(tmp_path)
    process = psutil.Process()
    before = process.memory_info().rss
    grown, widths = 0, []
    for _, _, columns in column_blocks(features, max_bytes=16 << 20, dtype=np.float16):
        assert columns.dtype == np.float16 and float(columns.sum(dtype=np.float64)) == columns.size
        widths.append(columns.shape[1])
        grown = max(grown, process.memory_info().rss - before)
    assert widths == [64] * 32  # 16 MiB / (4 bytes × 65,536 rows) columns a block
    assert grown < 96 * 2**20, f"resident memory grew by {grown / 2**20:.0f} MiB over 256 MiB of columns"
