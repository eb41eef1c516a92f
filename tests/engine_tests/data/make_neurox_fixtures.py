"""Writes neurox_written.hdf5 / neurox_written.json with neurox 1.0.9's own writers (run in a throwaway venv:
``pip install --no-deps neurox==1.0.9 && pip install h5py numpy``; not part of the test suite)."""

import numpy as np
from neurox.data.writer import HDF5ActivationsWriter, JSONActivationsWriter

SENTENCES = [["the", "cat", "sat"], ["a", "dog"], ["the", "cat", "sat"]]  # a repeat, as neurox keys it


def activations(index, n_words):  # [layers=2, words, dim=3], values that name their position
    return np.array([[[index + layer / 10 + word / 100 + unit / 1000 for unit in range(3)]
                      for word in range(n_words)] for layer in range(2)], dtype=np.float32)


for writer in (HDF5ActivationsWriter("neurox_written.hdf5"), JSONActivationsWriter("neurox_written.json")):
    writer.open()
    for i, words in enumerate(SENTENCES):
        writer.write_activations(i, words, activations(i, len(words)))
    writer.close()
