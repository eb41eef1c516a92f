"""How a word's subwords become one row: the word aggregation shared by extraction and manipulation.

``first``, ``last`` (NeuroX's default) or ``mean`` of the subwords' activations; special tokens are never part
of a word. A word with no subword (e.g. a lone zero-width character that the normaliser deletes) has no token
to read, so its row is a zero vector (it used to copy the previous word's vector, which made two words look
identical); extraction lists and logs such words with their positions.
"""

from __future__ import annotations

AGGREGATIONS = ("first", "last", "mean")


def word_positions(word_ids: list, keep: range, aggregation: str, leading_special: bool):
    """(token positions, word slot per position) for the kept words of one sequence; a word with no subword
    gets no position (its slot aggregates to zeros)."""
    positions_by_word: dict[int, list[int]] = {}
    for position, word in enumerate(word_ids):
        if word is not None:
            positions_by_word.setdefault(word, []).append(position)
    token_positions, slots = [], []
    for slot, word in enumerate(keep):
        positions = positions_by_word.get(word, [])
        if aggregation == "first":
            positions = positions[:1]
        elif aggregation == "last":
            positions = positions[-1:]
        token_positions.extend(positions)
        slots.extend([slot] * len(positions))
    return token_positions, slots


def word_activations(tokens, word_ids: list, n_words: int, aggregation: str):
    """``[n_words, units]`` word rows from one sequence's token activations ``[tokens, units]``, aggregated
    exactly as extraction does (for callers that run the model themselves, e.g. manipulation)."""
    import torch

    positions, slots = word_positions(word_ids, range(n_words), aggregation,
                                      leading_special=bool(word_ids) and word_ids[0] is None)
    picked = tokens[torch.as_tensor(positions, dtype=torch.long, device=tokens.device)]
    if aggregation != "mean" and len(positions) == n_words:
        return picked
    slots = torch.as_tensor(slots, dtype=torch.long, device=tokens.device)
    summed = torch.zeros((n_words, tokens.shape[-1]), dtype=picked.dtype, device=tokens.device)
    summed.index_add_(0, slots, picked)
    counts = torch.bincount(slots, minlength=n_words).clamp(min=1).to(picked.dtype)
    return summed / counts[:, None]
