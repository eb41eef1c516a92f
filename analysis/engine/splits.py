"""Train / dev / test splits of a corpus, made by sentence (never by word), as word-index arrays.

A word's neighbours share most of its context, so splitting words of one sentence across train and test would
leak; every split here keeps each sentence whole.

Default (the benchmark's protocol): the first ``1 - test_fraction`` of the sentences are for training and the last
``test_fraction`` for testing; the dev split is carved from the *end* of the training sentences. With
``shuffle=True`` the sentences are permuted with ``seed`` first (same proportions, reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # int64 word indices, increasing
    dev: np.ndarray
    test: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "dev": self.dev, "test": self.test}


def split_by_sentence(
    sentence_offsets,
    test_fraction: float = 0.2,
    dev_fraction: float = 0.1,
    seed: int = 0,
    shuffle: bool = False,
) -> Split:
    """Split words by sentence.

    ``sentence_offsets`` is int [S+1]: sentence ``i`` owns words ``offsets[i]:offsets[i+1]`` (the activation
    store's ``sentence_offsets``). ``test_fraction`` is a fraction of all sentences; ``dev_fraction`` a fraction of
    all sentences too, taken from the training part (so the defaults give 70 / 10 / 20). Sentence counts are rounded
    down for test and dev, so small corpora keep at least one training sentence. Empty sentences are harmless (they
    own no words).
    """
    offsets = np.asarray(sentence_offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) < 2:
        raise ValueError("sentence_offsets must be a 1-d array [n_sentences + 1] with at least one sentence")
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError("sentence_offsets must start at 0 and never decrease")
    if not (0 <= test_fraction < 1 and 0 <= dev_fraction < 1 and test_fraction + dev_fraction < 1):
        raise ValueError(
            f"test_fraction ({test_fraction}) and dev_fraction ({dev_fraction}) must be in [0, 1) and sum below 1"
        )
    n_sentences = len(offsets) - 1
    n_test = int(np.floor(n_sentences * test_fraction))
    n_dev = int(np.floor(n_sentences * dev_fraction))
    n_train = n_sentences - n_test - n_dev
    if n_train < 1:
        raise ValueError(f"{n_sentences} sentences leave none for training with these fractions")

    sentence_order = np.arange(n_sentences)
    if shuffle:
        sentence_order = np.random.default_rng(seed).permutation(n_sentences)
    train_sentences = sentence_order[:n_train]
    dev_sentences = sentence_order[n_train : n_train + n_dev]
    test_sentences = sentence_order[n_train + n_dev :]
    return Split(
        train=words_of_sentences(offsets, train_sentences),
        dev=words_of_sentences(offsets, dev_sentences),
        test=words_of_sentences(offsets, test_sentences),
    )


def words_of_sentences(sentence_offsets, sentences) -> np.ndarray:
    """Word indices (increasing) of the given sentences."""
    offsets = np.asarray(sentence_offsets, dtype=np.int64)
    sentences = np.sort(np.asarray(sentences, dtype=np.int64))
    if len(sentences) == 0:
        return np.zeros(0, dtype=np.int64)
    starts, ends = offsets[sentences], offsets[sentences + 1]
    lengths = ends - starts
    # one arange per sentence, built without a Python loop
    return np.repeat(starts - np.cumsum(np.r_[0, lengths[:-1]]), lengths) + np.arange(lengths.sum())
