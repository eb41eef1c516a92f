"""Word labels as ids into a list of label names (-1 = missing): the one validator, and alignment by name.

Every labelled computation (probe, univariate and probeless rankings, baselines, statistics) checks its labels
with :func:`check_labels`. Each store numbers its labels by its own sorted label set, so the same id means
different labels in two stores whose label sets differ: wherever labels of one store meet label names of
another (a probe evaluated on a second corpus), :func:`align_labels` maps them by name first.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

MISSING = -1


def check_labels(labels, label_names: Sequence[str], n_words: int) -> np.ndarray:
    """``labels`` as int64, after checking: one id per word, integer ids in [-1, len(label_names)), distinct
    names. Raises ``ValueError`` with a sentence that says what is wrong."""
    names = list(label_names)
    if not names:
        raise ValueError("labels need at least one label name")
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"label names must be distinct; repeated: {', '.join(map(str, duplicates))}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n_words:
        raise ValueError(f"labels must be one id per word: got shape {labels.shape} for {n_words} words")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer ids into the label names (-1 = missing), got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < MISSING or labels.max() >= len(names)):
        raise ValueError(
            f"label ids must lie in [-1, {len(names)}) for {len(names)} label names; "
            f"found {labels.min()}..{labels.max()}"
        )
    return labels


def labelled_rows(labels: np.ndarray, rows=None) -> np.ndarray:
    """The rows (default: every word; repeats kept) whose label is not missing. ``labels``: checked ids."""
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= len(labels)):
        raise ValueError(f"row indices must be in [0, {len(labels)}), found [{rows.min()}, {rows.max()}]")
    return rows[labels[rows] != MISSING]


def require_labelled_rows(labels: np.ndarray, rows=None) -> np.ndarray:
    """:func:`labelled_rows`, refusing a choice of rows in which no word carries a label."""
    rows = labelled_rows(labels, rows)
    if rows.size == 0:
        raise ValueError("no labelled words among the chosen rows")
    return rows


def align_labels(labels, names: Sequence[str], target_names: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    """Renumber ``labels`` (ids into ``names``) as ids into ``target_names``, matching by name.

    Returns ``(aligned ids, unknown)``: words whose label is not in ``target_names`` become missing (-1) and
    ``unknown`` counts them per label name, so a caller reports them instead of scoring them as another label.
    """
    names, target_names = list(names), list(target_names)
    labels = check_labels(labels, names, len(np.asarray(labels)))
    target_position = {name: i for i, name in enumerate(target_names)}
    mapping = np.array([target_position.get(name, MISSING) for name in names] + [MISSING], dtype=np.int64)
    aligned = mapping[labels]  # a missing label (-1) picks the trailing -1
    counts = np.bincount(labels[labels != MISSING], minlength=len(names))
    unknown = {name: int(counts[i]) for i, name in enumerate(names) if mapping[i] == MISSING and counts[i]}
    return aligned, unknown
