"""NeuroX activation interchange formats (methods.md §6), for users who come from the original library.

* HDF5 (``.hdf5``, the only suffix neurox's ``load_activations`` reads as HDF5): one float32 dataset per
  sentence, named by the sentence's index (``"0"``, ``"1"``...), of shape ``[layers, words, dim]``, plus a
  ``sentence_to_index`` dataset of shape ``(1,)`` holding one variable-length string: JSON that maps the sentence
  text (words joined by single spaces) to its index as a string. As neurox 1.0.9's writer does, the second
  occurrence of a sentence is keyed ``"<text> (Occurrence 2)"``, so every sentence keeps its entry (neurox's
  reader loads sentences by iterating this map). Older files (neurox < 1.0.9, or this platform before) stored
  the map as a scalar and let a repeat overwrite the first entry; import reads both, and takes the words from a
  corpus passed in when the map has lost some.
* JSON (``.json``, neurox's JSON writer) and JSON lines (``.jsonl``): the same text, one line per sentence,
  ``{"linex_index": i, "features": [{"token": word, "layers": [{"index": l, "values": [...]}]}]}``; ``.json``
  rounds to 8 decimals and numbers the layers 0.. as neurox does, ``.jsonl`` keeps the store's layer numbers.

Both exports cover one neuron set (default ``hidden``; NeuroX's layer 0 is the embeddings, as ours) and read the
store sentence by sentence, so memory stays bounded. HDF5 import writes a normal activation store.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .formats import Corpus
from .hashing import sha256_of
from .store import ActivationStore, StoreWriter, store_key

SENTENCE_TO_INDEX = "sentence_to_index"
EXPORT_SUFFIXES = (".hdf5", ".json", ".jsonl")
_OCCURRENCE = re.compile(r"^(.*) \(Occurrence (\d+)\)$")


class InterchangeError(ValueError):
    """The file is not a NeuroX activation file this platform can read; the message says why."""


def _layers(store: ActivationStore, neuron_set: str, layers: Sequence[int] | None) -> list[int]:
    spec = store.neuron_sets.get(neuron_set)
    if spec is None:
        raise KeyError(f"no neuron set {neuron_set!r} in this store (has {', '.join(store.neuron_sets)})")
    return list(range(spec["layers"])) if layers is None else [int(layer) for layer in layers]


def _sentence_activations(arrays: list, start: int, end: int) -> np.ndarray:
    """float32 [layers, words, dim] for words [start, end)."""
    return np.stack([np.asarray(array[start:end], dtype=np.float32) for array in arrays])


def _keyed_by_occurrence(sentence: str, mapping: dict) -> str:
    """neurox 1.0.9's key for a sentence text: the text, or ``"<text> (Occurrence n)"`` for its n-th repeat."""
    key, count = sentence, 1
    while key in mapping:
        count += 1
        key = f"{sentence} (Occurrence {count})"
    return key


def export_hdf5(store: ActivationStore, path, *, neuron_set: str = "hidden", layers=None) -> Path:
    import h5py

    path = Path(path)
    chosen = _layers(store, neuron_set, layers)
    arrays = [store.array(neuron_set, layer) for layer in chosen]
    offsets = store.sentence_offsets
    sentence_to_index = {}
    with h5py.File(path, "w") as handle:
        for i in range(store.n_sentences):
            activations = _sentence_activations(arrays, int(offsets[i]), int(offsets[i + 1]))
            handle.create_dataset(str(i), data=activations, dtype="float32")
            sentence_to_index[_keyed_by_occurrence(" ".join(store.sentence(i)), sentence_to_index)] = str(i)
        mapping = handle.create_dataset(SENTENCE_TO_INDEX, (1,), dtype=h5py.string_dtype())
        mapping[0] = json.dumps(sentence_to_index)
    return path


def jsonl_lines(store: ActivationStore, *, neuron_set: str = "hidden", layers=None, decimals: int = 6,
                neurox_layer_numbers: bool = False):
    """The JSON-lines text, one line (with its newline) per sentence, read from the store sentence by sentence:
    what :func:`export_jsonl` writes, for a caller that streams it (a download) instead of writing a file."""
    chosen = _layers(store, neuron_set, layers)
    arrays = [store.array(neuron_set, layer) for layer in chosen]
    offsets = store.sentence_offsets
    numbers = list(range(len(chosen))) if neurox_layer_numbers else chosen
    for i in range(store.n_sentences):
        activations = _sentence_activations(arrays, int(offsets[i]), int(offsets[i + 1]))
        features = [
            {
                "token": word,
                "layers": [
                    {"index": number, "values": [round(float(v), decimals) for v in activations[k, w]]}
                    for k, number in enumerate(numbers)
                ],
            }
            for w, word in enumerate(store.sentence(i))
        ]
        yield json.dumps({"linex_index": i, "features": features}, ensure_ascii=False) + "\n"


def export_jsonl(store: ActivationStore, path, *, neuron_set: str = "hidden", layers=None, decimals: int = 6,
                 neurox_layer_numbers: bool = False) -> Path:
    path = Path(path)
    lines = jsonl_lines(store, neuron_set=neuron_set, layers=layers, decimals=decimals,
                        neurox_layer_numbers=neurox_layer_numbers)
    first = next(lines, None)  # an unknown neuron set fails here, before the file is created
    with open(path, "w", encoding="utf-8") as handle:
        if first is not None:
            handle.write(first)
        handle.writelines(lines)
    return path


def export_neurox_json(store: ActivationStore, path, *, neuron_set: str = "hidden", layers=None) -> Path:
    """neurox's JSON activation file (its ``JSONActivationsWriter``): 8 decimals, layers numbered 0.."""
    return export_jsonl(store, path, neuron_set=neuron_set, layers=layers, decimals=8, neurox_layer_numbers=True)


def export_activations(store: ActivationStore, path, *, neuron_set: str = "hidden", layers=None) -> Path:
    """Export in the format the suffix names: ``.hdf5``, ``.json`` (neurox's JSON) or ``.jsonl``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".hdf5":
        return export_hdf5(store, path, neuron_set=neuron_set, layers=layers)
    if suffix == ".json":
        return export_neurox_json(store, path, neuron_set=neuron_set, layers=layers)
    if suffix == ".jsonl":
        return export_jsonl(store, path, neuron_set=neuron_set, layers=layers)
    hint = " (neurox reads HDF5 only from a .hdf5 file)" if suffix in (".h5", ".he5") else ""
    raise InterchangeError(
        f"cannot export to {path.name!r}: the file name must end in .hdf5 (neurox HDF5), .json (neurox JSON) "
        f"or .jsonl (JSON lines){hint}"
    )


def _sentences_from_map(raw) -> dict[int, str]:
    """Index -> sentence text from a ``sentence_to_index`` value, as neurox 1.0.9 writes it (a (1,) string
    dataset, repeats keyed ``"... (Occurrence n)"``) or as older writers did (a scalar string)."""
    value = raw[0] if isinstance(raw, np.ndarray) and raw.shape == (1,) else raw
    mapping = json.loads(value.decode("utf-8") if isinstance(value, bytes) else str(value))
    by_index = {}
    for key, index in mapping.items():
        sentence = key
        match = _OCCURRENCE.match(key)
        if match and int(match.group(2)) >= 2 and match.group(1) in mapping:  # a repeat, not a literal text
            sentence = match.group(1)
        by_index[int(index)] = sentence
    return by_index


def _dataset_indices(handle, path: Path) -> list[int]:
    """The sentence indices of the file's datasets, checked to be numbered 0..n-1 with at least one."""
    names = [name for name in handle.keys() if name != SENTENCE_TO_INDEX]
    if not all(name.isdigit() for name in names):
        odd = sorted(name for name in names if not name.isdigit())[:5]
        raise InterchangeError(f"{path.name}: datasets must be named by sentence index; found {odd}")
    indices = sorted(int(name) for name in names)
    if indices != list(range(len(indices))):
        raise InterchangeError(f"{path.name}: sentence datasets are not numbered 0..{len(indices) - 1}")
    if not indices:
        raise InterchangeError(f"{path.name} holds no sentence datasets")
    return indices


def _hdf5_sentences(handle, path: Path, indices: list[int], corpus: Corpus | None) -> list[list[str]]:
    """The words of each sentence: the corpus's when given, else the file's ``sentence_to_index`` map's."""
    if corpus is not None:
        sentences = [list(s) for s in corpus.sentences]
        if len(sentences) != len(indices):
            raise InterchangeError(f"{path.name} has {len(indices)} sentences but the corpus has {len(sentences)}")
        return sentences
    if SENTENCE_TO_INDEX not in handle:
        raise InterchangeError(f"{path.name} has no {SENTENCE_TO_INDEX} dataset; pass the corpus instead")
    by_index = _sentences_from_map(handle[SENTENCE_TO_INDEX][()])
    missing = [i for i in indices if i not in by_index]
    if missing:
        raise InterchangeError(
            f"{path.name}: {len(missing)} sentence(s) are missing from {SENTENCE_TO_INDEX} (duplicated "
            f"sentences, e.g. index {missing[0]}); pass the corpus to import this file"
        )
    return [by_index[i].split(" ") if by_index[i] else [] for i in indices]


def _dataset_shape(handle, path: Path, indices: list[int], sentences: list[list[str]]) -> tuple[int, int]:
    """(layers, dim) of dataset 0, checked to be the shape of every dataset, whose words match its sentence."""
    first = handle["0"]
    if first.ndim != 3:
        raise InterchangeError(
            f"{path.name}: datasets must be [layers, words, dim]; dataset 0 has shape {first.shape}"
        )
    n_layers, dim = int(first.shape[0]), int(first.shape[2])
    for i in indices:
        shape = handle[str(i)].shape
        if len(shape) != 3 or shape[0] != n_layers or shape[2] != dim or shape[1] != len(sentences[i]):
            raise InterchangeError(
                f"{path.name}: sentence {i} has shape {shape}, expected [{n_layers}, {len(sentences[i])}, {dim}]"
            )
    return n_layers, dim


def _corpus_word_labels(corpus: Corpus | None, n_words: int) -> tuple[np.ndarray, list]:
    """(one label id per word, -1 where none, and the label names): the corpus's labels, or none at all."""
    label_names = corpus.label_names() if corpus is not None else []
    label_ids = {name: k for k, name in enumerate(label_names)}
    labels = np.full(n_words, -1, dtype=np.int32)
    if corpus is not None and corpus.labels is not None:
        flat = [label for sentence in corpus.labels for label in sentence]
        labels[:] = [label_ids[label] if label is not None else -1 for label in flat]
    return labels, label_names


def _copy_datasets(handle, writer: StoreWriter, neuron_set: str, sentences: list[list[str]], n_layers: int,
                   sentences_per_chunk: int) -> None:
    """Write every dataset's rows into the store, chunk by chunk, skipping the chunks it already holds."""
    n_sentences = len(sentences)
    offsets = np.zeros(n_sentences + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sentences], out=offsets[1:])
    for chunk, start in enumerate(range(0, n_sentences, sentences_per_chunk)):
        if chunk in writer.done_chunks:
            continue
        end = min(start + sentences_per_chunk, n_sentences)
        for i in range(start, end):
            data = handle[str(i)][()]
            for layer in range(n_layers):
                writer.write_rows(neuron_set, layer, int(offsets[i]), data[layer])
        writer.finish_chunk(chunk, int(offsets[end] - offsets[start]))


def import_hdf5(
    path,
    store_path,
    *,
    corpus: Corpus | None = None,
    neuron_set: str = "hidden",
    model_sha256: str = "",
    sentences_per_chunk: int = 256,
    log: Callable[[str], None] | None = None,
) -> ActivationStore:
    """Read a NeuroX HDF5 activation file into an activation store (float16).

    Words come from ``corpus`` when given (its sentences must match the datasets one to one; its labels are
    kept) and otherwise from the file's ``sentence_to_index`` map, split on single spaces.
    """
    import h5py

    path = Path(path)
    say = log or (lambda text: None)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise InterchangeError(f"{path.name} is not an HDF5 file: {exc}") from exc
    with handle:
        indices = _dataset_indices(handle, path)
        sentences = _hdf5_sentences(handle, path, indices, corpus)
        n_layers, dim = _dataset_shape(handle, path, indices, sentences)
        n_words = sum(len(s) for s in sentences)
        labels, label_names = _corpus_word_labels(corpus, n_words)

        file_hash = sha256_of(path)
        corpus_hash = (corpus.source_sha256 if corpus is not None else "") or file_hash
        params = {"imported_from": "neurox-hdf5", "neuron_sets": [neuron_set], "file_sha256": file_hash}
        key = store_key(model_sha256 or file_hash, corpus_hash, params)
        meta = {"key": key, "model": {"sha256": model_sha256}, "corpus_sha256": corpus_hash, "params": params,
                "report": {"imported_from": path.name}}
        specs = {neuron_set: {"layers": n_layers, "units": dim}}
        writer = StoreWriter(store_path, specs, sentences, labels, label_names, meta, key)
        try:
            _copy_datasets(handle, writer, neuron_set, sentences, n_layers, sentences_per_chunk)
        finally:
            writer.close()
    say(f"imported {len(sentences)} sentences, {n_words} words, {n_layers} layers × {dim} units from {path.name}")
    return writer.complete()
