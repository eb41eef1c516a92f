"""The example projects' models, trained at full size, and what they must show (issue #11): translation quality
per seed, and tense neurons that flip the translation while random ones do not.

    python -m benchmarks.bench_examples                 # 3 translation seeds + 3 causal LMs (about 15 min quiet)
    python -m benchmarks.bench_examples --seeds 0 --no-lm   # one translation model

Models are written under ``var/examples/`` (reused when their folder exists: delete it to retrain). Each
process trains with one torch thread. The table's targets are the issue's.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from analysis.examples.grammar import generate
from analysis.examples.tense import tense_experiment
from analysis.examples.train import train_causal_lm, train_translation_model, translate, translation_quality

ROOT = Path(os.environ.get("NEUROX_EXAMPLES_DIR", "var/examples"))
TRAIN_PAIRS, TEST_SEED, TEST_PAIRS = 6000, 12345, 500
ANALYSIS, DEV, TEST = (3000, 1), (200, 2), (300, 3)  # (sentences, seed) for the tense experiment


def _timed(make, folder: Path):
    if (folder / "model.safetensors").is_file():
        return folder, None
    started = time.perf_counter()
    make(folder)
    return folder, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-lm", action="store_true", help="skip the causal language models")
    args = parser.parse_args()
    pairs, test = generate(TRAIN_PAIRS, seed=0), generate(TEST_PAIRS, seed=TEST_SEED)
    rows, flips = [], []
    for seed in args.seeds:
        folder, seconds = _timed(lambda out: train_translation_model(pairs, out, seed=seed, log=lambda _: None),
                                 ROOT / f"translation-seed{seed}")
        quality = translation_quality(translate(folder, [p.source for p in test]), [p.target for p in test])
        started = time.perf_counter()
        tense = tense_experiment(folder, generate(*ANALYSIS), generate(*DEV), generate(*TEST),
                                 ROOT / f"tense-work-seed{seed}", seed=seed)
        rows.append((f"translation seed {seed}: train", "reused" if seconds is None else f"{seconds:.0f} s", ""))
        rows.append((f"  BLEU / exact / verb forms", f"{quality['bleu']:.1f} / {quality['exact_percent']:.1f} % / "
                     f"{quality['verb_forms_percent']:.1f} %", "≥ 95 / ≥ 95 % / ≥ 98 %"))
        rows.append((f"  tense flips, top {len(tense['neurons'])} at α={tense['alpha']:g} (random)",
                     f"{100 * tense['flip_rate']:.0f} % ({100 * tense['random_flip_rate']:.0f} %) of "
                     f"{tense['test_sentences']}", "≥ 70 % (≤ 10 %)"))
        rows.append(("  experiment time", f"{time.perf_counter() - started:.0f} s", ""))
        flips.append(tense["flip_rate"])
    if flips:
        rows.append(("tense flips, mean over seeds", f"{100 * sum(flips) / len(flips):.0f} %", "≥ 80 %"))
    if not args.no_lm:
        sentences = [p.source for p in pairs]
        for seed in args.seeds:
            _, seconds = _timed(lambda out: train_causal_lm(sentences, out, seed=seed, log=lambda _: None),
                                ROOT / f"causal-lm-seed{seed}")
            rows.append((f"causal LM seed {seed}: train", "reused" if seconds is None else f"{seconds:.0f} s", ""))
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'measure':<{width}}{'value':<34}target")
    for name, value, target in rows:
        print(f"{name:<{width}}{value:<34}{target}")


if __name__ == "__main__":
    main()
