"""NeuroX interchange: HDF5 and JSON-lines export, HDF5 import into a store."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis.engine.formats import Corpus
from analysis.engine.interchange import (
    InterchangeError, export_activations, export_hdf5, export_jsonl, import_hdf5,
)
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
        # exactly how neurox 1.0.9's load_activations reads the map (it failed on the scalar written before)
        mapping = json.loads(handle.get("sentence_to_index")[0])
    # like neurox 1.0.9's writer, a repeat gets its own key, so neurox's reader loads every sentence
    assert mapping == {"the cat sat": "0", "": "1", "a dog": "2", "the cat sat (Occurrence 2)": "3"}


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
    # a repeated sentence keeps its own "(Occurrence 2)" key: the words come back without the corpus
    export_hdf5(store, tmp_path / "dup.hdf5")
    round_trip = import_hdf5(tmp_path / "dup.hdf5", tmp_path / "dup")
    assert round_trip.words == store.words
    np.testing.assert_array_equal(round_trip.sentence_offsets, store.sentence_offsets)
    np.testing.assert_array_equal(round_trip.array("hidden", 1), store.array("hidden", 1))


def test_hdf5_import_of_an_old_map_that_lost_a_repeat_asks_for_the_corpus(tmp_path):
    path = tmp_path / "old.hdf5"
    with h5py.File(path, "w") as handle:  # the pre-1.0.9 layout: a scalar map, the repeat overwrote index 0
        for i in range(2):
            handle.create_dataset(str(i), data=np.ones((3, 2, 4), dtype=np.float32))
        handle.create_dataset("sentence_to_index", data=json.dumps({"a dog": "1"}))
    with pytest.raises(InterchangeError, match="missing from sentence_to_index"):
        import_hdf5(path, tmp_path / "old")
    assert not (tmp_path / "old").exists() or not any((tmp_path / "old").iterdir())


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


NEUROX_FIXTURES = Path(__file__).parent / "data"


def _neurox_value(sentence, layer, word, unit):  # how make_neurox_fixtures.py filled the activations
    return sentence + layer / 10 + word / 100 + unit / 1000


def test_import_reads_the_hdf5_written_by_neurox(tmp_path):
    imported = import_hdf5(NEUROX_FIXTURES / "neurox_written.hdf5", tmp_path / "imported")
    assert imported.words == ["the", "cat", "sat", "a", "dog", "the", "cat", "sat"]
    np.testing.assert_array_equal(imported.sentence_offsets, [0, 3, 5, 8])
    assert imported.neuron_sets == {"hidden": {"layers": 2, "units": 3}}
    row = np.asarray(imported.array("hidden", 1)[6], dtype=np.float32)  # sentence 2, word 1, layer 1
    np.testing.assert_allclose(row, [_neurox_value(2, 1, 1, u) for u in range(3)], rtol=1e-3)


def test_export_round_trip_through_the_neurox_layout(tmp_path):
    neurox_store = import_hdf5(NEUROX_FIXTURES / "neurox_written.hdf5", tmp_path / "imported")
    ours = export_activations(neurox_store, tmp_path / "again.hdf5")
    with h5py.File(NEUROX_FIXTURES / "neurox_written.hdf5", "r") as theirs, h5py.File(ours, "r") as mine:
        assert json.loads(mine["sentence_to_index"][0]) == json.loads(theirs["sentence_to_index"][0])
        assert mine["sentence_to_index"].shape == theirs["sentence_to_index"].shape == (1,)
        for i in range(3):
            assert mine[str(i)].shape == theirs[str(i)].shape and mine[str(i)].dtype == theirs[str(i)].dtype
            np.testing.assert_allclose(mine[str(i)][()], theirs[str(i)][()], rtol=1e-3)


def test_json_export_is_neurox_json(tmp_path):
    store = import_hdf5(NEUROX_FIXTURES / "neurox_written.hdf5", tmp_path / "imported")
    ours = export_activations(store, tmp_path / "acts.json")
    theirs = (NEUROX_FIXTURES / "neurox_written.json").read_text().splitlines()
    mine = ours.read_text().splitlines()
    assert len(mine) == len(theirs) == 3
    for my_line, their_line in zip(mine, theirs):
        my_json, their_json = json.loads(my_line), json.loads(their_line)
        assert list(my_json) == list(their_json) == ["linex_index", "features"]
        assert [f["token"] for f in my_json["features"]] == [f["token"] for f in their_json["features"]]
        for my_feature, their_feature in zip(my_json["features"], their_json["features"]):
            assert [l["index"] for l in my_feature["layers"]] == [l["index"] for l in their_feature["layers"]]
            for my_layer, their_layer in zip(my_feature["layers"], their_feature["layers"]):
                np.testing.assert_allclose(my_layer["values"], their_layer["values"], rtol=1e-3)


@pytest.mark.parametrize("name", ["acts.h5", "acts.txt", "acts"])
def test_export_refuses_an_unknown_suffix(tmp_path, name):
    store = _store(tmp_path / "store")
    with pytest.raises(InterchangeError, match=r"must end in \.hdf5 \(neurox HDF5\), \.json \(neurox JSON\) or \.jsonl"):
        export_activations(store, tmp_path / name)
    assert not (tmp_path / name).exists()
