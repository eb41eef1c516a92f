"""The neuron page's heavy parts on a MiniLM-sized store (25k words × 11,904 neurons: 7 hidden layers × 384 and
6 MLP layers × 1,536), prints a table:

* the correlation of one neuron with every neuron of its model
  (``analysis.workspace.neuron.presenter.pearson_against``, one pass over the store in row blocks), cold (pages dropped from this process; the OS page cache may still hold
  them) and warm, and the cached answer the page gets afterwards;
* the correlation with word position (one column read);
* the ranking CSV of all 11,904 neurons (``analysis.workspace.downloads.presenter.ranking_rows`` through the CSV
  writer).

    /path/to/python benchmarks/bench_neuron.py [--store PATH_TO_A_COMPLETE_STORE] [--repeat 3]

Without ``--store`` it writes a synthetic float16 store of that shape to a temporary folder (about 600 MB; the
time of a pass depends on the shape, not on the values). No database needed.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPE = {"hidden": (7, 384), "mlp": (6, 1536)}


def synthetic_store(folder: Path, n_words: int = 25_147):
    from analysis.engine.features import Features
    from analysis.engine.neurons import layer_neurons

    rng = np.random.default_rng(0)
    blocks, ids = [], []
    for name, (layers, units) in SHAPE.items():
        for layer in range(layers):
            path = folder / f"{name}.L{layer}.npy"
            array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n_words, units))
            for start in range(0, n_words, 4096):
                stop = min(start + 4096, n_words)
                array[start:stop] = rng.standard_normal((stop - start, units), dtype=np.float32)
            array.flush()
            del array
            blocks.append(np.load(path, mmap_mode="r"))
            ids.extend(layer_neurons(name, layer, units))
    lengths = rng.integers(5, 30, size=n_words // 10)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    offsets = offsets[offsets < n_words]
    return Features(blocks, ids), np.append(offsets, n_words)


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="a complete activation store folder (e.g. MiniLM × UD EWT dev)")
    parser.add_argument("--statistics", help="a statistics result folder of that store (holds stats.npz/json)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neurox_site.settings")
    import django

    django.setup()  # the page's modules import the models (no database is touched)

    from analysis.engine.features import release_pages
    from analysis.engine.ranking import ranking_from_scores
    from analysis.workspace.downloads.presenter import _Echo, ranking_rows
    from analysis.workspace.neuron.presenter import _strongest, pearson_against

    temporary = None
    if args.store:
        from analysis.engine.store import ActivationStore

        store = ActivationStore.open(args.store)
        features, offsets = store.features(), store.sentence_offsets
        source = f"store {Path(args.store).name[:12]}"
    else:
        temporary = tempfile.TemporaryDirectory(prefix="bench-neuron-")
        features, offsets = synthetic_store(Path(temporary.name))
        source = "synthetic float16 store"
    n, width = features.shape
    column = 7 * 384 + 2 * 1536 + 5  # a neuron of mlp layer 2
    block, local = next((b, column - s) for b, s in _starts(features) if 0 <= column - s < b.shape[1])
    target = np.asarray(block[:, local], dtype=np.float64)

    rows = []

    def correlate():
        r = pearson_against(target, features)
        _strongest(r, features.neuron_ids, skip=column)

    def drop():
        for b in features.blocks:
            release_pages(b)

    drop()
    rows.append(("correlations with every neuron (first pass)", timed(correlate, 1)))
    rows.append(("correlations with every neuron (warm)", timed(correlate, args.repeat)))
    cache = {}
    rows.append(("correlations, cached answer", timed(lambda: cache.setdefault("k", 1), args.repeat)))

    def position():
        values = np.asarray(block[:, local], dtype=np.float64)
        lengths = np.diff(offsets)
        positions = np.concatenate([np.arange(1, k + 1) for k in lengths])
        np.corrcoef(values, positions)

    rows.append(("correlation with word position", timed(position, args.repeat)))
    ranking = ranking_from_scores("bench", features.neuron_ids, np.random.default_rng(1).random(width),
                                  {f"T{i}": np.random.default_rng(i).random(width) for i in range(17)})

    def ranking_csv():
        writer = csv.writer(_Echo())
        sum(len(writer.writerow(row)) for row in ranking_rows(ranking))

    rows.append(("ranking CSV, 11,904 neurons × 17 labels", timed(ranking_csv, args.repeat)))

    if args.statistics and args.store:
        rows += statistics_rows(Path(args.statistics), store, args.repeat)

    print(f"\n{source}: {n:,} words × {width:,} neurons ({n * width * 2 / 2**20:,.0f} MiB float16)")
    print("machine: 2 shared cores, loaded by the other engineers' tests and benchmarks\n")
    print(f"{'what':<46} {'median s':>10} {'min s':>8} {'max s':>8}")
    for what, times in rows:
        print(f"{what:<46} {statistics.median(times):>10.3f} {min(times):>8.3f} {max(times):>8.3f}")
    if temporary is not None:
        temporary.cleanup()


def statistics_rows(folder: Path, store, repeat: int) -> list:
    """The statistics half of the neuron page: loading the file (once per process), then per request the
    neuron's dictionary, the histogram's geometry and label rows, and the rendered histogram partial."""
    from django.template.loader import render_to_string

    from analysis.engine.stats import NeuronStats
    from analysis.workspace.neuron.presenter import histogram_chart, label_mean_rows

    loaded = {}
    out = [("statistics file load (once per process)",
            timed(lambda: loaded.setdefault("stats", NeuronStats.load(folder / "stats")), 1))]
    stats, words = loaded["stats"], store.words
    label = stats.neuron_ids[len(stats.neuron_ids) // 2].label

    def per_request():
        data = stats.for_neuron(label, words=words)
        chart = histogram_chart(data["histogram"])
        label_mean_rows(data, list(data["label_means"]))
        render_to_string("analysis/workspace/_histogram.html", {"chart": chart, "neuron": label})

    out.append(("statistics + histogram SVG per request", timed(per_request, max(repeat, 20))))
    return out


def _starts(features):
    start = 0
    for block in features.blocks:
        yield block, start
        start += block.shape[1]


if __name__ == "__main__":
    main()
