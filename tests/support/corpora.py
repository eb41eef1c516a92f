"""A small deterministic CoNLL-U corpus with UPOS labels (seven-word sentences from a fixed vocabulary)."""

from __future__ import annotations

import random

WORDS = {"DET": ["the", "a", "my", "this"], "NOUN": ["cat", "dog", "mat", "park", "tree", "book", "tea"],
         "VERB": ["sat", "ran", "read", "likes", "sang"], "ADP": ["on", "to", "in"], "PUNCT": ["."]}
PATTERN = ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN", "PUNCT"]


def conllu_text(n_sentences: int, seed: int = 0) -> str:
    """A deterministic CoNLL-U corpus of ``n_sentences`` seven-word sentences with UPOS labels."""
    rng = random.Random(seed)
    blocks = []
    for s in range(n_sentences):
        rows = [f"# sent_id = s{s}"]
        for i, tag in enumerate(PATTERN, start=1):
            word = rng.choice(WORDS[tag])
            rows.append(f"{i}\t{word}\t{word}\t{tag}\t_\t_\t{i - 1}\tdep\t_\t_")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks) + "\n\n"
