"""The activation store: writer, chunk journal and resume, and the reader API others code against."""

import json

import numpy as np
import pytest

from analysis.engine.neurons import NeuronId
from analysis.engine.store import ActivationStore, StoreError, StoreWriter, data_bytes, open_complete, store_key

SENTENCES = [["a", "b", "c"], [], ["d", "e"], ["f"]]
LABELS = np.array([1, 0, -1, 1, 0, 1], dtype=np.int32)
SPECS = {"hidden": {"layers": 2, "units": 3}, "mlp": {"layers": 1, "units": 4}}


def _values(neuron_set, layer, units, n_words=6):
    base = {"hidden": 0.0, "mlp": 100.0}[neuron_set] + 10 * layer
    return (base + np.arange(n_words * units).reshape(n_words, units) / 8).astype(np.float16)


def _write_chunk(writer, rows):
    for name, spec in SPECS.items():
        for layer in range(spec["layers"]):
            values = _values(name, layer, spec["units"])
            writer.write_rows(name, layer, rows.start, values[rows])


def _build(path, fingerprint="plan-1", stop_after=None):
    writer = StoreWriter(path, SPECS, SENTENCES, LABELS, ["DET", "NOUN"], {"key": "k"}, fingerprint)
    written = []
    chunks = [slice(0, 3), slice(3, 6)]
    for number, rows in enumerate(chunks):
        if number in writer.done_chunks:
            continue
        if stop_after is not None and number >= stop_after:
            writer.close()
            return writer, written
        _write_chunk(writer, rows)
        writer.finish_chunk(number, rows.stop - rows.start)
        written.append(number)
    return writer.complete({"report": {"note": "ok"}}), written


def test_reader_api(tmp_path):
    store, _ = _build(tmp_path / "store")
    store = ActivationStore.open(tmp_path / "store")
    assert store.n_words == 6
    assert store.neuron_sets == SPECS
    np.testing.assert_array_equal(store.sentence_offsets, [0, 3, 3, 5, 6])
    assert store.sentence_offsets.dtype == np.int64
    assert store.words == ["a", "b", "c", "d", "e", "f"]
    assert store.sentence(1) == [] and store.sentence(2) == ["d", "e"]
    np.testing.assert_array_equal(store.sentence_index, [0, 0, 0, 2, 2, 3])
    np.testing.assert_array_equal(store.labels, LABELS)
    assert store.labels.dtype == np.int32
    assert store.label_names == ["DET", "NOUN"]
    array = store.array("mlp", 0)
    assert isinstance(array, np.memmap) and array.dtype == np.float16 and array.shape == (6, 4)
    np.testing.assert_array_equal(array, _values("mlp", 0, 4))
    assert store.meta["report"] == {"note": "ok"}

    features = store.features()
    assert features.shape == (6, 3 + 3 + 4)
    assert features.neuron_ids[0] == NeuronId("hidden", 0, 0)
    assert features.neuron_ids[-1].label == "mlp.L0:3"
    np.testing.assert_array_equal(features.rows(slice(0, 6))[:, 3:6], _values("hidden", 1, 3).astype(np.float32))

    only = store.features("hidden", layers=[1])
    assert [n.label for n in only.neuron_ids] == ["L1:0", "L1:1", "L1:2"]
    assert store.features(layers={"mlp": [0], "hidden": [0]}).shape == (6, 7)
    with pytest.raises(KeyError, match="no neuron set"):
        store.features("attention")
    with pytest.raises(KeyError, match="layers 0..1"):
        store.array("hidden", 2)


def test_incomplete_store_cannot_be_opened(tmp_path):
    _build(tmp_path / "store", stop_after=1)
    with pytest.raises(StoreError, match="incomplete"):
        ActivationStore.open(tmp_path / "store")
    with pytest.raises(StoreError, match="not an activation store"):
        ActivationStore.open(tmp_path / "nothing")


def test_resume_skips_journalled_chunks(tmp_path):
    writer, written = _build(tmp_path / "store", stop_after=1)
    assert written == [0]
    store, written = _build(tmp_path / "store")
    assert written == [1]  # chunk 0 was not rewritten
    clean, _ = _build(tmp_path / "clean")
    for name, spec in SPECS.items():
        for layer in range(spec["layers"]):
            np.testing.assert_array_equal(store.array(name, layer), clean.array(name, layer))


def test_another_plan_starts_over(tmp_path):
    _build(tmp_path / "store", stop_after=1)
    _, written = _build(tmp_path / "store", fingerprint="plan-2")
    assert written == [0, 1]
    journal = (tmp_path / "store" / "journal.jsonl").read_text().splitlines()
    assert json.loads(journal[0]) == {"plan": "plan-2"}


def test_rows_that_do_not_fit_are_refused(tmp_path):
    writer = StoreWriter(tmp_path / "s", SPECS, SENTENCES, LABELS, [], {}, "p")
    with pytest.raises(StoreError, match="do not fit"):
        writer.write_rows("hidden", 0, 5, np.zeros((2, 3), dtype=np.float16))
    with pytest.raises(StoreError, match="do not fit"):
        writer.write_rows("hidden", 0, 0, np.zeros((2, 4), dtype=np.float16))
    writer.close()


def test_store_key_is_stable_and_sensitive():
    key = store_key("m" * 64, "c" * 64, {"aggregation": "last", "neuron_sets": ["hidden", "mlp"]})
    assert key == store_key("m" * 64, "c" * 64, {"neuron_sets": ["hidden", "mlp"], "aggregation": "last"})
    assert key != store_key("m" * 64, "c" * 64, {"aggregation": "first", "neuron_sets": ["hidden", "mlp"]})
    assert key != store_key("x" * 64, "c" * 64, {"aggregation": "last", "neuron_sets": ["hidden", "mlp"]})
    assert key != store_key("m" * 64, "x" * 64, {"aggregation": "last", "neuron_sets": ["hidden", "mlp"]})


def test_open_complete_trusts_only_a_finished_store_of_the_same_key(tmp_path):
    writer = StoreWriter(tmp_path / "s", SPECS, SENTENCES, LABELS, [], {"key": "k1"}, "p")
    writer.write_rows("hidden", 0, 0, np.zeros((6, 3), dtype=np.float16))
    writer.finish_chunk(0, 6)
    writer.close()
    assert open_complete(tmp_path / "s", "k1") is None  # journalled but not complete
    writer = StoreWriter(tmp_path / "s", SPECS, SENTENCES, LABELS, [], {"key": "k1"}, "p")
    writer.complete()
    assert open_complete(tmp_path / "s", "k1").meta["key"] == "k1"
    assert open_complete(tmp_path / "s", "k2") is None
    assert open_complete(tmp_path / "missing", "k1") is None


def test_data_bytes_is_the_size_of_the_written_files(tmp_path):
    sentences = [["a", "é", "ü"], [], ["naïve", "x"]]
    specs = {"hidden": {"layers": 2, "units": 3}, "mlp": {"layers": 1, "units": 7}}
    writer = StoreWriter(tmp_path / "s", specs, sentences, np.zeros(5, dtype=np.int32), [], {}, "p")
    store = writer.complete()
    written = sum(p.stat().st_size for p in store.path.iterdir() if p.name not in ("meta.json", "journal.jsonl"))
    assert data_bytes(sentences, specs) == written
