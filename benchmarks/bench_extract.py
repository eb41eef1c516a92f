"""Extraction benchmark: all-MiniLM-L6-v2 on the UD EWT dev file (a table, not a timed test).

Measured side by side in one run (same process, same batches; the corpus is processed in four slices with the
three approaches interleaved, so load changes on a shared machine affect them alike):

* extraction of all hidden + MLP layers into a store vs the bare forward passes of the same batches (target ≤ 1.3);
* extraction words/s vs a one-sentence-per-forward baseline (the original library's approach; target ≥ 2×);
* peak resident memory of an extraction of the corpus repeated 1× and 4×, each in a fresh subprocess
  (target: the 4× peak within 1.25× of the 1× peak, i.e. memory bounded by streaming).

Run: ``python benchmarks/bench_extract.py [--sentences N]`` (``N`` limits the corpus for a quick look).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.assets import UD_DEV  # noqa: E402
from tests.assets import minilm_model_dir as minilm_dir  # noqa: E402


def load_corpus(limit: int | None = None, repeats: int = 1):
    from analysis.engine.formats import Corpus, read_conllu

    corpus = read_conllu(UD_DEV, label_column="upos")
    sentences, labels = corpus.sentences, corpus.labels
    if limit:
        sentences, labels = sentences[:limit], labels[:limit]
    return Corpus(sentences=sentences * repeats, labels=labels * repeats, label_column="upos")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def time_extraction(loaded, corpus, store_dir) -> tuple[float, object]:
    from analysis.engine.extract import ExtractionParams, extract_activations

    started = time.perf_counter()
    params = ExtractionParams(neuron_sets=("hidden", "mlp"), label_column=corpus.label_column)
    store = extract_activations(loaded, corpus, store_dir, params)
    return time.perf_counter() - started, store


def time_bare_forwards(loaded, corpus) -> float:
    """The same plan and batches as the extraction (tokenization included), with no hooks and no writes."""
    import numpy as np
    import torch

    from analysis.engine.extract import ExtractionParams, plan_extraction

    tokenizer, runner = loaded.tokenizer, loaded.model.base_model
    started = time.perf_counter()
    plan = plan_extraction(loaded, corpus, ExtractionParams(label_column=corpus.label_column))
    segments, max_tokens = plan.segments, plan.max_tokens
    with torch.inference_mode():
        for batch in plan.batches:
            words = [corpus.sentences[segments[i].sentence] for i in batch]
            encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_tokens)
            width = max(len(ids) for ids in encoded["input_ids"])
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for b, row in enumerate(encoded["input_ids"]):
                ids[b, : len(row)] = row
                mask[b, : len(row)] = 1
            runner(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                   token_type_ids=torch.zeros_like(torch.from_numpy(ids)))
    return time.perf_counter() - started


def time_one_sentence_per_forward(loaded, corpus) -> float:
    """NeuroX's approach: one sentence per forward pass, all hidden states, last subword kept per word."""
    import torch

    tokenizer, runner = loaded.tokenizer, loaded.model.base_model
    started = time.perf_counter()
    with torch.inference_mode():
        for words in corpus.sentences:
            if not words:
                continue
            encoded = tokenizer(words, is_split_into_words=True, truncation=True, return_tensors="pt")
            output = runner(**encoded, output_hidden_states=True)
            word_ids = encoded.word_ids(0)
            last = {w: p for p, w in enumerate(word_ids) if w is not None}
            positions = torch.tensor([last[w] for w in sorted(last)])
            _ = [h[0, positions].numpy() for h in output.hidden_states]
    return time.perf_counter() - started


def memory_child(repeats: int, limit: int | None) -> dict:
    """Run in a subprocess: load, extract the corpus × repeats, report peak RSS."""
    import torch

    from analysis.engine.loading import load_model

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    loaded = load_model(minilm_dir())
    corpus = load_corpus(limit, repeats)
    before = _peak_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        seconds, store = time_extraction(loaded, corpus, Path(tmp) / "store")
        n_words = store.n_words
    return {"repeats": repeats, "words": n_words, "seconds": seconds, "peak_rss_mib": _peak_rss_mib(),
            "rss_before_mib": before}


def _run_child(repeats: int, limit: int | None) -> dict:
    command = [sys.executable, __file__, "--child", str(repeats)] + (["--sentences", str(limit)] if limit else [])
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(corpus_repeats: int = 1, limit: int | None = None, memory: bool = True, parts: int = 4) -> dict:
    """Time the three approaches on the same corpus. The corpus is cut into ``parts`` consecutive slices and
    the three are run slice by slice, interleaved, so a change of load on a shared machine hits all of them."""
    import torch

    from analysis.engine.formats import Corpus
    from analysis.engine.loading import load_model

    loaded = load_model(minilm_dir())
    corpus = load_corpus(limit, corpus_repeats)
    time_one_sentence_per_forward(loaded, load_corpus(20))  # warm-up
    size = -(-len(corpus.sentences) // parts)
    extract_s = bare_s = single_s = 0.0
    n_words = units = 0
    with tempfile.TemporaryDirectory() as tmp:
        for part, start in enumerate(range(0, len(corpus.sentences), size)):
            piece = Corpus(sentences=corpus.sentences[start : start + size], labels=corpus.labels[start : start + size])
            seconds, store = time_extraction(loaded, piece, Path(tmp) / f"store{part}")
            extract_s += seconds
            n_words += store.n_words
            units = sum(spec["layers"] * spec["units"] for spec in store.neuron_sets.values())
            bare_s += time_bare_forwards(loaded, piece)
            single_s += time_one_sentence_per_forward(loaded, piece)
    results = {
        "model": "all-MiniLM-L6-v2",
        "corpus": f"{UD_DEV.name} ×{corpus_repeats}",
        "sentences": len(corpus.sentences),
        "words": n_words,
        "units_per_word": units,
        "threads": torch.get_num_threads(),
        "extract_s": extract_s,
        "bare_forward_s": bare_s,
        "extract_vs_bare": extract_s / bare_s,
        "extract_words_per_s": n_words / extract_s,
        "one_sentence_words_per_s": n_words / single_s,
        "speedup_vs_one_sentence": single_s / extract_s,
    }
    if memory:
        small, large = _run_child(1, limit), _run_child(4, limit)
        results.update(
            rss_x1_mib=small["peak_rss_mib"], rss_x4_mib=large["peak_rss_mib"],
            rss_ratio=large["peak_rss_mib"] / small["peak_rss_mib"], extract_x4_s=large["seconds"],
        )
    return results


def print_table(results: dict) -> None:
    rows = [
        ("corpus", f"{results['corpus']}: {results['sentences']} sentences, {results['words']} words", ""),
        ("units per word (hidden + mlp, all layers)", f"{results['units_per_word']}", ""),
        ("torch threads", f"{results['threads']}", ""),
        ("extraction (all hidden + MLP layers)", f"{results['extract_s']:.2f} s", ""),
        ("bare forward passes, same batches", f"{results['bare_forward_s']:.2f} s", ""),
        ("ratio extraction / bare", f"{results['extract_vs_bare']:.2f}", "≤ 1.30"),
        ("extraction words/s", f"{results['extract_words_per_s']:.0f}", ""),
        ("one-sentence-per-forward words/s", f"{results['one_sentence_words_per_s']:.0f}", ""),
        ("speed-up vs one sentence per forward", f"{results['speedup_vs_one_sentence']:.2f}×", "≥ 2×"),
    ]
    if "rss_ratio" in results:
        rows += [
            ("peak RSS, extraction of corpus ×1", f"{results['rss_x1_mib']:.0f} MiB", ""),
            ("peak RSS, extraction of corpus ×4", f"{results['rss_x4_mib']:.0f} MiB", ""),
            ("ratio ×4 / ×1", f"{results['rss_ratio']:.2f}", "≤ 1.25"),
        ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>{value_width}}  target")
    print("-" * (width + value_width + 10))
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {target}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=None, help="use only the first N sentences")
    parser.add_argument("--repeats", type=int, default=1, help="corpus repeats for the timing part")
    parser.add_argument("--no-memory", action="store_true", help="skip the ×1 / ×4 memory subprocesses")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(memory_child(args.child, args.sentences)))
    else:
        print_table(run(args.repeats, args.sentences, memory=not args.no_memory))
