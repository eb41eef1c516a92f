"""How a word's subwords become one row: the word aggregation shared by extraction and manipulation.

``first``, ``last`` (NeuroX's default) or ``mean`` of the subwords' activations; special tokens are never part
of a word. A word with no subword (e.g. a lone zero-width character that the normaliser deletes) takes the
nearest token: the last subword of the previous word, else the leading special token, else the first subword
of the next word.
"""

from __future__ import annotations

AGGREGATIONS = ("first", "last", "mean")


def _nearest_token(positions_by_word: dict[int, list[int]], word: int, leading_special: bool) -> int:
    """For a word with no subword: the previous word's last subword, else the leading special token, else the
    next word's first subword."""
    earlier = [w for w in positions_by_word if w < word]
    if earlier:
        return positions_by_word[max(earlier)][-1]
    later = [w for w in positions_by_word if w > word]
    if leading_special or not later:
        return 0
    return positions_by_word[min(later)][0]


def word_positions(word_ids: list, keep: range, aggregation: str, leading_special: bool):
    """(token positions, word slot per position) for the kept words of one sequence."""
    positions_by_word: dict[int, list[int]] = {}
    for position, word in enumerate(word_ids):
        if word is not None:
            positions_by_word.setdefault(word, []).append(position)
    token_positions, slots = [], []
    for slot, word in enumerate(keep):
        positions = positions_by_word.get(word)
        if not positions:
            positions = [_nearest_token(positions_by_word, word, leading_special)]
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
    if aggregation != "mean":
        return picked
    slots = torch.as_tensor(slots, dtype=torch.long, device=tokens.device)
    summed = torch.zeros((n_words, tokens.shape[-1]), dtype=picked.dtype, device=tokens.device)
    summed.index_add_(0, slots, picked)
    counts = torch.bincount(slots, minlength=n_words).clamp(min=1).to(picked.dtype)
    return summed / counts[:, None]
