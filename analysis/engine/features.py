"""A feature matrix made of column blocks (one per stored layer), read by rows without loading it whole.

Every ranking, probe and statistic takes a :class:`Features`. Blocks may be NumPy arrays or ``np.memmap``
views of the activation store's float16 files; :meth:`Features.rows` returns float32 rows for a batch of
word indices. Wrap a plain in-memory array with :func:`as_features` (tests, notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .neurons import NeuronId, layer_neurons


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
        """float32 rows for ``index`` (a slice or an integer array), all blocks side by side."""
        if not isinstance(index, slice):
            index = np.asarray(index)
            # memmaps read fastest in increasing order; restore the caller's order afterwards
            order = np.argsort(index, kind="stable")
            sorted_rows = self._read(index[order])
            out = np.empty_like(sorted_rows)
            out[order] = sorted_rows
            return out
        return self._read(index)

    def _read(self, index) -> np.ndarray:
        parts = [np.asarray(block[index], dtype=np.float32) for block in self.blocks]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

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

    def _read(self, index):
        return self.parent._read(index)[:, self.columns]


def as_features(array, neuron_set: str = "hidden", layer: int = 0) -> Features:
    """Wrap an in-memory ``[n_words, units]`` array as one layer's Features."""
    array = np.asarray(array)
    return Features([array], layer_neurons(neuron_set, layer, array.shape[1]))
