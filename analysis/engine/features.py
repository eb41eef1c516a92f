"""A feature matrix made of column blocks (one per stored layer), read by rows without loading it whole.

Every ranking, probe and statistic takes a :class:`Features`. Blocks may be NumPy arrays or ``np.memmap``
views of the activation store's float16 files; :meth:`Features.rows` returns float32 rows for a batch of
word indices. Wrap a plain in-memory array with :func:`as_features` (tests, notebooks).

:func:`column_blocks` is the shared reader for every computation that needs whole columns (exact average
precision, mutual information, neuron statistics).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .neurons import NeuronId, layer_neurons


def release_pages(block) -> None:
    """Drop a memmap's pages from this process's resident set once they have been read (they stay in the OS
    page cache, so reading again is cheap). Otherwise every page of the store that a pass touches stays mapped
    into the reader, and its memory grows with the size of the store."""
    mapping = getattr(block, "_mmap", None)
    if mapping is not None:
        mapping.madvise(mmap.MADV_DONTNEED)


def read_block(block, index, dtype=np.float32) -> np.ndarray:
    """A float32 (or ``dtype``) copy of ``block[index]``, releasing the memmap pages read."""
    values = np.array(block[index], dtype=dtype)  # a copy even in the store's own dtype: the pages go next
    release_pages(block)
    return values


@dataclass
class Features:
    blocks: list  # array-likes of shape [n_words, units_i]
    neuron_ids: list[NeuronId]

    def __post_init__(self):
        n_rows = {block.shape[0] for block in self.blocks}
        if len(n_rows) != 1:
            raise ValueError(f"feature blocks disagree on the number of words: {sorted(n_rows)}")
        width = sum(block.shape[1] for block in self.blocks)
        if width != len(self.neuron_ids):
            raise ValueError(f"{width} feature columns but {len(self.neuron_ids)} neuron ids")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.blocks[0].shape[0], len(self.neuron_ids))

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, index) -> np.ndarray:
        """float32 rows for ``index`` (a slice or an integer array, repeats allowed), all blocks side by side."""
        if isinstance(index, slice):
            return self._read(index)
        index = np.asarray(index)
        # memmaps read fastest in increasing order; each row is written straight to its place in the caller's order
        order = np.argsort(index, kind="stable")
        return self._read(index[order], destination=order)

    def _read(self, index, destination=None) -> np.ndarray:
        """Rows ``index`` of every block, converted into one preallocated float32 array (no per-block float32
        copies, so a read costs about its own size in memory). ``destination``: the output row of each index."""
        n_rows = len(range(*index.indices(self.shape[0]))) if isinstance(index, slice) else len(index)
        out = np.empty((n_rows, sum(block.shape[1] for block in self.blocks)), dtype=np.float32)
        column = 0
        for block in self.blocks:
            width = block.shape[1]
            if destination is None:
                out[:, column : column + width] = block[index]
            else:
                out[destination, column : column + width] = block[index]
            release_pages(block)
            column += width
        return out

    def iter_rows(self, batch_size: int = 4096, index: np.ndarray | None = None):
        """Yield ``(row_indices, float32 rows)`` in batches; memory is bounded by ``batch_size``."""
        total = len(self) if index is None else len(index)
        for start in range(0, total, batch_size):
            if index is None:
                batch = np.arange(start, min(start + batch_size, total))
                yield batch, self.rows(slice(start, start + len(batch)))
            else:
                batch = index[start : start + batch_size]
                yield batch, self.rows(batch)

    def select(self, columns: Sequence[int]) -> "Features":
        """A Features view over some columns (kept in memory only per batch)."""
        return _ColumnSubset(self, np.asarray(columns, dtype=np.int64))


class _ColumnSubset(Features):
    def __init__(self, parent: Features, columns: np.ndarray):
        self.parent, self.columns = parent, columns
        self.blocks = parent.blocks
        self.neuron_ids = [parent.neuron_ids[c] for c in columns]

    @property
    def shape(self):
        return (self.parent.shape[0], len(self.columns))

    def _read(self, index, destination=None):
        return self.parent._read(index, destination)[:, self.columns]


READ_BATCH_BYTES = 16 << 20


def _column_spans(features: Features, chunk: int, dtype):
    """(start, stop, reader) spans of at most ``chunk`` columns; a span never crosses a stored block."""
    width = features.shape[1]
    if type(features) is not Features:  # a column subset or another view: read rows, then slice
        for start in range(0, width, chunk):
            stop = min(start + chunk, width)
            yield start, stop, (lambda idx, a=start, b=stop: features.rows(idx)[:, a:b].astype(dtype, copy=False))
        return
    offset = 0
    for block in features.blocks:
        units = block.shape[1]
        for local in range(0, units, chunk):
            local_stop = min(local + chunk, units)
            yield (offset + local, offset + local_stop,
                   (lambda idx, blk=block, a=local, b=local_stop: read_block(blk, (idx, slice(a, b)), dtype)))
        offset += units


def column_blocks(features: Features, rows=None, max_bytes: int = 256 << 20, column_bytes: int | None = None,
                  dtype=np.float32):
    """Yield ``(start, stop, float32 [len(rows), stop-start])``: whole columns for the chosen rows, in blocks.

    ``rows`` may be unsorted and repeat (bootstrap); the block's rows follow ``rows``' order. The block width
    is ``max_bytes // column_bytes`` (default ``column_bytes`` = 4 bytes × rows), at least one column.
    ``dtype=np.float16`` reads a float16 store without widening it (exact only when the store is float16).
    """
    n_total, width = features.shape
    all_rows = rows is None
    rows = np.arange(n_total) if all_rows else np.asarray(rows, dtype=np.int64)
    n = len(rows)
    chunk = max(1, int(max_bytes // (column_bytes or 4 * max(1, n))))
    order = None if all_rows else np.argsort(rows, kind="stable")
    sorted_rows = rows if all_rows else rows[order]
    for start, stop, read in _column_spans(features, chunk, dtype):
        block = np.empty((n, stop - start), dtype=dtype)
        batch = max(256, READ_BATCH_BYTES // (4 * (stop - start)))
        for b in range(0, n, batch):
            if all_rows:
                block[b : b + batch] = read(slice(b, min(b + batch, n)))
            else:
                block[order[b : b + batch]] = read(sorted_rows[b : b + batch])
        yield start, stop, block


def as_features(array, neuron_set: str = "hidden", layer: int = 0) -> Features:
    """Wrap an in-memory ``[n_words, units]`` array as one layer's Features."""
    array = np.asarray(array)
    return Features([array], layer_neurons(neuron_set, layer, array.shape[1]))
