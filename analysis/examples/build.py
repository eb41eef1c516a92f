"""Rebuild the example projects' small models that are committed under ``analysis/examples/models/``.

    python -m analysis.examples.build                      # all six (about 8 minutes on one core)
    python -m analysis.examples.build --kind translation   # or: --kind causal_lm; --seeds 0 1

Why the weights are committed rather than trained on the first start: a newcomer's first `scripts/serve` must
serve within minutes and finish every example within 25 on a 2-core machine, and six trainings take about 5 to 8 of
those minutes; the files are small (about 3 MB each), and this script with its fixed seeds rebuilds the same bytes
(the training is deterministic on the CPU: see ``tests/examples_tests/test_training.py``).
Each process trains with one torch thread; run the two kinds in two processes to use two cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .grammar import generate
from .train import train_causal_lm, train_translation_model

MODELS_DIR = Path(__file__).resolve().parent / "models"
SEEDS = (0, 1, 2)
TRAINING_PAIRS = (6000, 0)  # (pairs, grammar seed): the models' training data
KINDS = ("translation", "causal_lm")


def model_dir(kind: str, seed: int, root: Path = MODELS_DIR) -> Path:
    return root / f"{kind.replace('_', '-')}-seed{seed}"


def build(kind: str, seed: int, root: Path = MODELS_DIR, *, pairs=None, log=print, **training) -> Path:
    """Train one example model into ``root`` (``pairs`` and ``training`` (sizes, schedule) default to the
    committed models' settings)."""
    pairs = pairs if pairs is not None else generate(*TRAINING_PAIRS)
    out = model_dir(kind, seed, root)
    if kind == "translation":
        return train_translation_model(pairs, out, seed=seed, log=log, **training)
    return train_causal_lm([p.source for p in pairs], out, seed=seed, log=log, **training)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, action="append", help="default: both")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", type=Path, default=MODELS_DIR)
    args = parser.parse_args()
    pairs = generate(*TRAINING_PAIRS)
    for kind in args.kind or KINDS:
        for seed in args.seeds:
            started = time.perf_counter()
            folder = build(kind, seed, args.out, pairs=pairs)
            print(f"{folder}: {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
