"""The on-disk activation store: one float16 ``.npy`` per (neuron set, layer), written in chunks, read as memmaps.

Layout of a store directory::

    meta.json            status ('building' | 'complete'), neuron sets, label names, hashes, parameters,
                         library versions, the extraction report (empty / windowed / cut words)
    words.json           the words, flat, in corpus order
    sentence_offsets.npy int64 [S+1]: sentence i is words[offsets[i]:offsets[i+1]] (an empty sentence has 0 words)
    labels.npy           int32 [n_words]: index into meta["label_names"] (sorted), -1 = missing or no labels
    <set>.L<layer>.npy   float16 [n_words, units], e.g. hidden.L0.npy, mlp.L3.npy, enc.hidden.L2.npy
    journal.jsonl        chunk journal: the plan fingerprint, then one line per finished chunk

Deviation from the brief: sentence offsets and words live in their own files next to ``meta.json`` (not inside
it), so reading the metadata of a large store stays cheap; the reader API is the same.

Arrays are preallocated with ``np.lib.format.open_memmap`` and then written with positioned writes
(``os.pwrite``) rather than through a writable memmap: pages of a writable map stay in the writer's resident
set, so memory would grow with the corpus. A chunk's rows are written, then the chunk is appended to the
journal, so a crash loses at most the chunk in progress and a re-run with the same plan resumes after the last
journalled chunk. Writes reach the OS (not necessarily the disk) before the journal line: a killed or crashed
worker is survived; nothing is fsync'ed, because syncing hundreds of MB per chunk would cost more than the
forward passes, so after a power cut a store that was being built should be rebuilt.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .features import Features
from .hashing import sha256_json
from .neurons import layer_neurons, resolve_neuron_sets

FORMAT_VERSION = 1
META = "meta.json"
WORDS = "words.json"
OFFSETS = "sentence_offsets.npy"
LABELS = "labels.npy"
JOURNAL = "journal.jsonl"
STATUS_BUILDING, STATUS_COMPLETE = "building", "complete"
ACTIVATION_DTYPE = np.float16


class StoreError(RuntimeError):
    """The store is missing, incomplete or inconsistent."""


def array_filename(neuron_set: str, layer: int) -> str:
    return f"{neuron_set}.L{layer}.npy"


def store_key(model_sha256: str, corpus_sha256: str, params: dict) -> str:
    """A stable content key for (model, corpus, parameters that shape the arrays): the cache key of a store."""
    return sha256_json({"format": FORMAT_VERSION, "model": model_sha256, "corpus": corpus_sha256, "params": params})


def npy_bytes(shape: tuple[int, ...], dtype) -> int:
    """The size of a ``.npy`` file holding an array of ``shape`` and ``dtype`` (header included)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    )
    return header.tell() + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def data_bytes(sentences: Sequence[Sequence[str]], neuron_sets: dict[str, dict]) -> int:
    """The exact size on disk of a store's arrays and word files (all but ``meta.json`` and the journal)."""
    n_words = sum(len(sentence) for sentence in sentences)
    words = json.dumps([word for sentence in sentences for word in sentence], ensure_ascii=False)
    total = len(words.encode("utf-8"))
    total += npy_bytes((len(sentences) + 1,), np.int64) + npy_bytes((n_words,), np.int32)
    for spec in neuron_sets.values():
        total += spec["layers"] * npy_bytes((n_words, spec["units"]), ACTIVATION_DTYPE)
    return total


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- reading


class ActivationStore:
    """Read access to a complete store. Arrays are float16 memmaps; nothing large is loaded on open."""

    def __init__(self, path, meta: dict):
        self.path = Path(path)
        self.meta = meta
        self._offsets = None
        self._words = None
        self._labels = None
        self._sentence_index = None

    @classmethod
    def open(cls, path) -> "ActivationStore":
        path = Path(path)
        meta_path = path / META
        if not meta_path.is_file():
            raise StoreError(f"{path}: not an activation store (no {META})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("status") != STATUS_COMPLETE:
            raise StoreError(f"{path}: the activation store is incomplete (status {meta.get('status')!r})")
        return cls(path, meta)

    @property
    def neuron_sets(self) -> dict[str, dict]:
        return {name: dict(spec) for name, spec in self.meta["neuron_sets"].items()}

    @property
    def n_words(self) -> int:
        return int(self.meta["n_words"])

    @property
    def n_sentences(self) -> int:
        return int(self.meta["n_sentences"])

    @property
    def sentence_offsets(self) -> np.ndarray:
        if self._offsets is None:
            self._offsets = np.load(self.path / OFFSETS)
        return self._offsets

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._words = json.loads((self.path / WORDS).read_text(encoding="utf-8"))
        return self._words

    def sentence(self, i: int) -> list[str]:
        offsets = self.sentence_offsets
        return self.words[offsets[i] : offsets[i + 1]]

    @property
    def sentence_index(self) -> np.ndarray:
        """int64 [n_words]: the sentence each word belongs to."""
        if self._sentence_index is None:
            lengths = np.diff(self.sentence_offsets)
            self._sentence_index = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        return self._sentence_index

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = np.load(self.path / LABELS)
        return self._labels

    @property
    def label_names(self) -> list[str]:
        return list(self.meta.get("label_names", []))

    def array(self, neuron_set: str, layer: int) -> np.memmap:
        spec = self.meta["neuron_sets"].get(neuron_set)
        if spec is None:
            raise KeyError(f"no neuron set {neuron_set!r} in this store (has {', '.join(self.meta['neuron_sets'])})")
        if not 0 <= layer < spec["layers"]:
            raise KeyError(f"{neuron_set} has layers 0..{spec['layers'] - 1}, not {layer}")
        return np.load(self.path / array_filename(neuron_set, layer), mmap_mode="r")

    def features(self, neuron_sets: Iterable[str] | str | None = None, layers=None) -> Features:
        """A :class:`Features` over the chosen sets and layers (blocks are memmaps, in set then layer order).

        ``neuron_sets``: a name, a list of names, or None for all (``hidden``/``mlp`` name both sides of an
        encoder-decoder's store). ``layers``: None (all), an int or a list of ints applied to every chosen set, or
        a dict ``{set: [layers]}``.
        """
        if neuron_sets is None:
            neuron_sets = list(self.meta["neuron_sets"])
        elif isinstance(neuron_sets, str):
            neuron_sets = [neuron_sets]
        try:  # "hidden" of an encoder-decoder's store is its enc.hidden and dec.hidden
            neuron_sets = resolve_neuron_sets(self.meta["neuron_sets"], neuron_sets)
        except ValueError:
            missing = [n for n in neuron_sets if n not in self.meta["neuron_sets"]]
            raise KeyError(f"no neuron set {missing[0]!r} in this store (has {', '.join(self.meta['neuron_sets'])})"
                           ) from None
        blocks, ids = [], []
        for name in neuron_sets:
            spec = self.meta["neuron_sets"][name]
            chosen = layers.get(name) if isinstance(layers, dict) else layers
            if chosen is None:
                chosen = range(spec["layers"])
            elif isinstance(chosen, (int, np.integer)):
                chosen = [int(chosen)]
            for layer in chosen:
                blocks.append(self.array(name, int(layer)))
                ids.extend(layer_neurons(name, int(layer), spec["units"]))
        if not blocks:
            raise ValueError("no layers selected")
        return Features(blocks, ids)

    def __repr__(self) -> str:
        sets = ", ".join(f"{n}: {s['layers']}×{s['units']}" for n, s in self.meta["neuron_sets"].items())
        return f"<ActivationStore {self.path} words={self.n_words} {sets}>"


def open_complete(path, key: str) -> ActivationStore | None:
    """The store at ``path`` if it is complete and was built for ``key``; None if absent, unfinished or other."""
    meta_path = Path(path) / META
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if meta.get("status") == STATUS_COMPLETE and meta.get("key") == key:
        return ActivationStore(path, meta)
    return None


# ---------------------------------------------------------------------------------------------- writing


class StoreWriter:
    """Builds a store chunk by chunk; resumes a store whose plan fingerprint matches.

    Usage: ``writer = StoreWriter(path, neuron_sets, sentences, labels, label_names, meta, plan_fingerprint)``;
    ``writer.done_chunks`` says what to skip; ``write_rows(set, layer, row_start, rows)`` for data;
    ``finish_chunk(k, words)``; finally ``complete(report)`` returns the reader.
    """

    def __init__(
        self,
        path,
        neuron_sets: dict[str, dict],
        sentences: Sequence[Sequence[str]],
        labels: np.ndarray,
        label_names: list[str],
        meta: dict,
        plan_fingerprint: str,
    ):
        self.path = Path(path)
        self.neuron_sets = neuron_sets
        self.plan_fingerprint = plan_fingerprint
        lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
        offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        self.n_words = int(offsets[-1])
        self.meta = dict(
            meta,
            format_version=FORMAT_VERSION,
            status=STATUS_BUILDING,
            n_words=self.n_words,
            n_sentences=len(sentences),
            neuron_sets=neuron_sets,
            label_names=list(label_names),
        )
        self.done_chunks: set[int] = set()
        self.words_done = 0
        if not self._try_resume():
            self._start(sentences, offsets, labels)
        self._fds: dict[tuple[str, int], int] = {}
        self._data_offsets: dict[tuple[str, int], int] = {}

    # -- setup

    def _try_resume(self) -> bool:
        journal = self.path / JOURNAL
        meta_path = self.path / META
        if not (journal.is_file() and meta_path.is_file()):
            return False
        try:
            old_meta = json.loads(meta_path.read_text(encoding="utf-8"))
            lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (json.JSONDecodeError, OSError):
            return False
        if not lines or lines[0].get("plan") != self.plan_fingerprint:
            return False
        if old_meta.get("n_words") != self.n_words or old_meta.get("neuron_sets") != self.neuron_sets:
            return False
        for name, spec in self.neuron_sets.items():
            for layer in range(spec["layers"]):
                if not (self.path / array_filename(name, layer)).is_file():
                    return False
        for entry in lines[1:]:
            if "chunk" in entry:
                self.done_chunks.add(int(entry["chunk"]))
                self.words_done += int(entry.get("words", 0))
        return True

    def _start(self, sentences, offsets: np.ndarray, labels: np.ndarray) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        stale_files = [self.path / name for name in (JOURNAL, OFFSETS, LABELS, WORDS)]
        for stale in list(self.path.glob("*.L*.npy")) + stale_files:
            if stale.exists():
                stale.unlink()
        _write_json_atomic(self.path / META, self.meta)
        with open(self.path / WORDS, "w", encoding="utf-8") as handle:
            json.dump([word for sentence in sentences for word in sentence], handle, ensure_ascii=False)
        np.save(self.path / OFFSETS, offsets)
        np.save(self.path / LABELS, np.asarray(labels, dtype=np.int32).reshape(self.n_words))
        for name, spec in self.neuron_sets.items():
            for layer in range(spec["layers"]):
                # preallocates the file (sparse where the filesystem allows); the map is dropped at once
                array = np.lib.format.open_memmap(
                    self.path / array_filename(name, layer), mode="w+", dtype=ACTIVATION_DTYPE,
                    shape=(self.n_words, spec["units"]),
                )
                del array
        with open(self.path / JOURNAL, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"plan": self.plan_fingerprint}) + "\n")

    def _fd(self, key: tuple[str, int]) -> int:
        fd = self._fds.get(key)
        if fd is None:
            filename = self.path / array_filename(*key)
            with open(filename, "rb") as handle:  # the .npy header length, to find the data start
                version = np.lib.format.read_magic(handle)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                read_header(handle)
                self._data_offsets[key] = handle.tell()
            fd = os.open(filename, os.O_RDWR)
            self._fds[key] = fd
        return fd

    # -- writing

    def write_rows(self, neuron_set: str, layer: int, row_start: int, rows: np.ndarray) -> None:
        """Write float16 ``rows`` [n, units] at word row ``row_start`` of (set, layer)."""
        key = (neuron_set, layer)
        fd = self._fd(key)
        units = self.neuron_sets[neuron_set]["units"]
        rows = np.ascontiguousarray(rows, dtype=ACTIVATION_DTYPE)
        if rows.ndim != 2 or rows.shape[1] != units or row_start < 0 or row_start + rows.shape[0] > self.n_words:
            raise StoreError(
                f"rows {rows.shape} at {row_start} do not fit {neuron_set} L{layer} [{self.n_words}, {units}]"
            )
        if rows.size == 0:
            return
        offset = self._data_offsets[key] + row_start * units * rows.itemsize
        data = memoryview(rows).cast("B")
        while data:
            written = os.pwrite(fd, data, offset)
            data, offset = data[written:], offset + written

    def finish_chunk(self, chunk: int, words: int) -> None:
        """Record a chunk as done; call only after all its rows were written."""
        with open(self.path / JOURNAL, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"chunk": chunk, "words": words}) + "\n")
            handle.flush()
        self.done_chunks.add(chunk)
        self.words_done += words

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def complete(self, extra_meta: dict | None = None) -> ActivationStore:
        self.close()
        self.meta.update(extra_meta or {})
        self.meta["status"] = STATUS_COMPLETE
        _write_json_atomic(self.path / META, self.meta)
        return ActivationStore.open(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
