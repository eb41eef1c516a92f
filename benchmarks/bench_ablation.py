"""Time one model-level ablation curve (11 points, top and bottom) on a small causal LM; prints a table.

    .venv/bin/python -m benchmarks.bench_ablation                    # tiny GPT-2, 4 layers, 200 UD EWT sentences
    .venv/bin/python -m benchmarks.bench_ablation --sentences 50 --layers 2

The model is a randomly initialised GPT-2 built from a config (timing does not depend on its weights); the
test set is the first sentences of the UD EWT dev file (toy sentences if the file is not there). The ranking is
a fixed permutation of the MLP neurons. Rows: a plain evaluation, one with half the neurons zeroed by hooks
(the hooks' overhead), and the whole curve.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.assets import UD_DEV


def _sentences(count: int) -> list[list[str]]:
    if UD_DEV.is_file():
        from analysis.engine.formats import read_conllu

        return read_conllu(UD_DEV, label_column=None).sentences[:count]
    from tests.engine_tests.tiny_models import TOY_SENTENCES

    return [s.split() for s in (TOY_SENTENCES * (count // len(TOY_SENTENCES) + 1))[:count]]


def run(sentences: int = 200, layers: int = 4, hidden: int = 64, ffn: int = 256, threads: int | None = None) -> list:
    import torch

    from analysis.engine.interventions import intervene, zero
    from analysis.engine.model_ablation import ablation_curve, causal_lm_task
    from analysis.engine.loading import load_model
    from analysis.engine.neurons import NeuronId
    from tests.engine_tests.tiny_models import make_tiny_model

    if threads:
        torch.set_num_threads(threads)
    texts = _sentences(sentences)
    with tempfile.TemporaryDirectory() as tmp:
        lm = load_model(make_tiny_model("gpt2", Path(tmp) / "gpt2", layers=layers, hidden=hidden, ffn=ffn, heads=4))
        neurons = [NeuronId("mlp", s.layer, u) for s in lm.neuron_sites()["mlp"] for u in range(s.units)]
        ranking = [neurons[i] for i in np.random.default_rng(0).permutation(len(neurons))]

        started = time.perf_counter()
        task = causal_lm_task(lm, texts)
        prepare = time.perf_counter() - started

        started = time.perf_counter()
        task.evaluate()
        plain = time.perf_counter() - started

        started = time.perf_counter()
        with intervene(lm.model, zero(ranking[: len(ranking) // 2]), sites=lm.neuron_sites()):
            task.evaluate()
        hooked = time.perf_counter() - started

        started = time.perf_counter()
        result = ablation_curve(lm, ranking, task)
        curve = time.perf_counter() - started

    evaluations = 1 + 2 * (len(result["x"]["count"]) - 1)
    tokens = task.info["tokens"]
    return [
        {"step": "model", "value": f"GPT-2 {layers}x{hidden}, FFN {ffn}, {len(neurons)} MLP neurons"},
        {"step": "test set", "value": f"{task.info['sentences']} sentences, {tokens} predicted tokens"},
        {"step": "tokenise + pack (once)", "value": f"{prepare:.3f} s"},
        {"step": "plain evaluation", "value": f"{plain:.3f} s ({tokens / plain:,.0f} tokens/s)"},
        {"step": "evaluation, 50 % zeroed by hooks", "value": f"{hooked:.3f} s ({hooked / plain:.2f}x plain)"},
        {"step": f"curve: {len(result['x']['count'])} points x top+bottom", "value":
            f"{curve:.2f} s, {evaluations} evaluations, {curve / evaluations:.3f} s each"},
        {"step": "loss baseline -> all removed", "value":
            f"{result['baseline']['loss']:.3f} -> {result['curves']['top']['loss'][-1]:.3f}"},
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--ffn", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    rows = run(args.sentences, args.layers, args.hidden, args.ffn, args.threads)
    width = max(len(r["step"]) for r in rows)
    print(f"{'step':<{width}}  value")
    for row in rows:
        print(f"{row['step']:<{width}}  {row['value']}")


if __name__ == "__main__":
    main()
