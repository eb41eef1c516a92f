"""Small activation stores with a planted signal, written through the real store writer (no model needed).

Each label *name* has its own signal unit (:data:`SIGNAL_UNIT`), whatever other labels a corpus has, so two
stores with different label sets carry the same signal for the labels they share: a probe trained on one
is right on the other exactly when labels are matched by name. Label ids follow each store's own sorted label
names, as the extractor numbers them.
"""

from __future__ import annotations

import numpy as np

from analysis.engine.store import ActivationStore, StoreWriter

SIGNAL_UNIT = {"ADJ": 1, "DET": 3, "NOUN": 5, "VERB": 6, "X": 7}
UNITS = 10


def planted_store(path, label_names=("ADJ", "DET", "NOUN", "VERB"), n_sentences=60, words_per_sentence=6,
                  seed=0, strength=3.0, key="planted", model_sha256="planted-model",
                  label_column="upos") -> ActivationStore:
    names = sorted(label_names)
    rng = np.random.default_rng(seed)
    n = n_sentences * words_per_sentence
    labels = rng.integers(0, len(names), n)
    x = rng.normal(size=(n, UNITS)).astype(np.float32)
    for i, name in enumerate(names):
        x[labels == i, SIGNAL_UNIT[name]] += strength
    words = [f"w{k}" for k in rng.integers(0, 40, n)]
    sentences = [words[s * words_per_sentence : (s + 1) * words_per_sentence] for s in range(n_sentences)]
    writer = StoreWriter(path, {"hidden": {"layers": 2, "units": UNITS}}, sentences, labels.astype(np.int32),
                         names, {"key": key, "corpus_sha256": f"corpus-{key}", "model": {"sha256": model_sha256},
                                 "params": {"label_column": label_column}}, plan_fingerprint=key)
    with writer:
        writer.write_rows("hidden", 0, 0, rng.normal(size=(n, UNITS)))  # layer 0: noise only
        writer.write_rows("hidden", 1, 0, x)
        writer.finish_chunk(0, n)
    return writer.complete()
