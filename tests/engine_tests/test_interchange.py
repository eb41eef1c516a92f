"""NeuroX interchange: HDF5 and JSON-lines export, HDF5 import into a store."""

import json

import h5py
import numpy as np
import pytest

from analysis.engine.formats import Corpus
from analysis.engine.interchange import InterchangeError, export_hdf5, export_jsonl, import_hdf5
from analysis.engine.store import StoreWriter

SENTENCES = [["the", "cat", "sat"], [], ["a", "dog"], ["the", "cat", "sat"]]
N_WORDS = 8


def _store(path):
    specs = {"hidden": {"layers": 3, "units": 4}, "mlp": {"layers": 2, "units": 5}}
    writer = StoreWriter(path, specs, SENTENCES, np.full(N_WORDS, -1), [], {}, "p")
    rng = np.random.default_rng(0)
    for name, spec in specs.items():
        for layer in range(spec["layers"]):
            writer.write_rows(name, layer, 0, rng.normal(size=(N_WORDS, spec["units"])).astype(np.float16))
    writer.finish_chunk(0, N_WORDS)
    return writer.complete()


def test_hdf5_export_layout(tmp_path):
    store = _store(tmp_path / "store")
    path = export_hdf5(store, tmp_path / "acts.hdf5")
    with h5py.File(path, "r") as handle:
        assert sorted(k for k in handle.keys() if k != "sentence_to_index") == ["0", "1", "2", "3"]
        assert handle["0"].shape == (3, 3, 4) and handle["0"].dtype == np.float32
        assert handle["1"].shape == (3, 0, 4)
        np.testing.assert_array_equal(handle["2"][1], np.asarray(store.array("hidden", 1)[3:5], dtype=np.float32))
        mapping = json.loads(handle["sentence_to_index"][()])
    # like NeuroX, a repeated sentence maps to its last index
    assert mapping == {"the cat sat": "3", "": "1", "a dog": "2"}


def test_hdf5_round_trip_with_corpus(tmp_path):
    store = _store(tmp_path / "store")
    export_hdf5(store, tmp_path / "acts.hdf5", neuron_set="mlp")
    corpus = Corpus(sentences=SENTENCES, labels=[["D", "N", "V"], [], ["D", "N"], ["D", "N", None]])
    imported = import_hdf5(tmp_path / "acts.hdf5", tmp_path / "imported", corpus=corpus, neuron_set="mlp")
    assert imported.neuron_sets == {"mlp": {"layers": 2, "units": 5}}
    assert imported.words == store.words
    np.testing.assert_array_equal(imported.sentence_offsets, store.sentence_offsets)
    assert imported.label_names == ["D", "N", "V"]
    np.testing.assert_array_equal(imported.labels, [0, 1, 2, 0, 1, 0, 1, -1])
    for layer in range(2):
        np.testing.assert_array_equal(imported.array("mlp", layer), store.array("mlp", layer))


def test_hdf5_import_reads_words_from_the_map(tmp_path):
    store = _store(tmp_path / "store")
    path = tmp_path / "unique.hdf5"
    with h5py.File(path, "w") as handle:
        for i, sentence in enumerate([["the", "cat", "sat"], ["a", "dog"]]):
            handle.create_dataset(str(i), data=np.ones((3, len(sentence), 4), dtype=np.float32) * i)
        handle.create_dataset("sentence_to_index", data=json.dumps({"the cat sat": "0", "a dog": "1"}))
    imported = import_hdf5(path, tmp_path / "imported")
    assert imported.words == ["the", "cat", "sat", "a", "dog"]
    np.testing.assert_array_equal(imported.array("hidden", 2)[3:], np.ones((2, 4)))
    assert (imported.labels == -1).all()
    # duplicated sentences lose an index in the map: without the corpus the words cannot be recovered
    export_hdf5(store, tmp_path / "dup.hdf5")
    with pytest.raises(InterchangeError, match="missing from sentence_to_index"):
        import_hdf5(tmp_path / "dup.hdf5", tmp_path / "dup")


def test_hdf5_import_checks_shapes(tmp_path):
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("0", data=np.ones((3, 2, 4), dtype=np.float32))
        handle.create_dataset("sentence_to_index", data=json.dumps({"the cat sat": "0"}))
    with pytest.raises(InterchangeError, match=r"sentence 0 has shape \(3, 2, 4\), expected \[3, 3, 4\]"):
        import_hdf5(path, tmp_path / "s")
    (tmp_path / "not.hdf5").write_text("hello")
    with pytest.raises(InterchangeError, match="not an HDF5 file"):
        import_hdf5(tmp_path / "not.hdf5", tmp_path / "s2")


def test_jsonl_export(tmp_path):
    store = _store(tmp_path / "store")
    path = export_jsonl(store, tmp_path / "acts.jsonl", layers=[0, 2])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["linex_index"] for line in lines] == [0, 1, 2, 3]
    assert lines[1]["features"] == []
    feature = lines[2]["features"][1]
    assert feature["token"] == "dog"
    assert [layer["index"] for layer in feature["layers"]] == [0, 2]
    expected = np.asarray(store.array("hidden", 2)[4], dtype=np.float32)
    np.testing.assert_allclose(feature["layers"][1]["values"], expected, atol=1e-6)
