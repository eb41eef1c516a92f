"""Every download of a run's results, in one place for the Downloads page (its ``views.py``) and
the API, read through the run's :class:`RunView`.

A download is (a succeeded step of the run, a format name its step type lists: ``StepType.downloads``).
Rankings: CSV (neuron, rank, score, rank interval, a rank per label) and the JSON document; statistics: a CSV
summary per neuron and the raw ``stats.npz`` / ``stats.json``; curves: CSV and JSON; activations of one neuron
set in NeuroX's formats; any other format is the result's own file.

Nothing big is built in memory: CSVs and JSON lines are generated row by row (``StreamingHttpResponse``) and
files go out as ``FileResponse``. HDF5 cannot be streamed as it is written (h5py needs a seekable file), so
an HDF5 export is built once per (store, neuron set) under ``exports/`` in the results folder, atomically, on
its first request, and served from there afterwards (results never change, so the file is good for ever). We
chose building on request over a queued "prepare" step: it needs no new step kind or state to show, the
Downloads page states the size before anyone clicks, and a store that is built once is served at disk speed.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.utils.text import slugify

from analysis.models import ResultKind, Step, results_root
from analysis.steps.registry import Download, step_type
from analysis.steps.storage import result_path
from analysis.workspace.run_view import (
    RunView, builds, document_of, ranking_of, ready_result, statistics_of, store_of,
)

EXPORTS = "exports"


def format_of(step: Step, name: str) -> Download:
    for fmt in step_type(step.kind).downloads:
        if fmt.name == name:
            return fmt
    raise Http404(f"No download “{name}” for this result.")


def filename(run, step: Step, fmt: Download, neuron_set: str | None = None) -> str:
    """A name that says what the file is: ``run7-ranking-anova-tiny-bert.csv``,
    ``run7-extract-activations-tiny-bert-x-toy-conllu-hidden.hdf5``, ``run7-neuron-statistics-tiny-bert-stats.npz``."""
    title = slugify(step.title)[:80].strip("-") or step.kind
    what = fmt.name.rsplit(".", 1)[0]
    parts = [f"run{run.pk}", title]
    if what != step_type(step.kind).downloads[0].name.rsplit(".", 1)[0]:  # a kind's secondary files
        parts.append(what)
    if neuron_set:
        parts.append(slugify(neuron_set.replace(".", "-")))
    return "-".join(parts) + f".{fmt.suffix}"


class _Echo:
    """csv.writer's file: hands each row back instead of keeping it."""

    def write(self, value):
        return value


def _csv_stream(rows):
    writer = csv.writer(_Echo())
    return (writer.writerow(row) for row in rows)


def _number(value) -> str:
    return "" if value is None or not np.isfinite(value) else repr(float(value))


# ------------------------------------------------------------------------------------------------ rows


def ranking_rows(ranking, model: str | None = None):
    """Header, then one row per neuron in rank order: neuron, rank (1 = best), score, the 90 % rank interval
    when the ranking has resamples, and the neuron's rank in each label's sub-ranking."""
    labels = sorted(ranking.per_label)
    confidence = ranking.confidence or {}
    low, high = confidence.get("rank_low"), confidence.get("rank_high")
    label_ranks = {}
    for label in labels:
        ranks = np.zeros(len(ranking.neuron_ids), dtype=np.int64)  # 0: not in that label's sub-ranking
        ranks[ranking.per_label[label]] = np.arange(1, len(ranking.per_label[label]) + 1)
        label_ranks[label] = ranks
    lead = ["model"] if model is not None else []
    yield [*lead, "neuron", "rank", "score", *(["rank_low", "rank_high"] if low else []),
           *[f"rank_{label}" for label in labels]]
    for rank, i in enumerate(ranking.order, start=1):
        yield [*([model] if model is not None else []), ranking.neuron_ids[i].label, rank,
               _number(ranking.scores[i]), *([int(low[i]) + 1, int(high[i]) + 1] if low else []),
               *[int(label_ranks[label][i]) or "" for label in labels]]


def statistics_rows(stats):
    """Header, then one row per neuron: its summary statistics and the label it best detects."""
    a = stats.arrays
    quantiles = stats.params.get("quantiles", [])
    has_best = "best_label" in a
    yield ["neuron", "mean", "std", "min", "max", *[f"q{q:g}" for q in quantiles],
           *(["best_label", "best_label_ap", "best_label_selectivity"] if has_best else [])]
    for i, neuron in enumerate(stats.neuron_ids):
        best = []
        if has_best:
            label = int(a["best_label"][i])
            best = [stats.label_names[label], _number(a["best_label_ap"][i]),
                    _number(a["label_selectivity"][i, label])] if label >= 0 else ["", "", ""]
        yield [neuron.label, _number(a["mean"][i]), _number(a["std"][i]), _number(a["min"][i]),
               _number(a["max"][i]), *[_number(v) for v in a["quantiles"][i]], *best]


def curve_rows(curve: dict):
    """Header, then one row per point of a probe-ablation curve (its ``points``) or a model-ablation curve
    (per order, each count removed with every metric; each random order's own curve too)."""
    if "points" in curve:  # probe ablation
        keys = list(dict.fromkeys(k for point in curve["points"] for k in point))
        yield keys
        for point in curve["points"]:
            yield [point.get(k, "") for k in keys]
        return
    metrics = curve["metrics"]
    yield ["order", "removed", "removed_percent", *metrics]
    lines = list(curve["curves"].items()) + [(f"random-{i + 1}", c) for i, c in
                                             enumerate(curve.get("random_curves", []))]
    for order, values in lines:
        for j, count in enumerate(curve["x"]["count"]):
            yield [order, count, curve["x"]["percent"][j], *[values[m][j] for m in metrics]]


# ------------------------------------------------------------------------------------------------ activations


def hdf5_path(store_key: str, neuron_set: str) -> Path:
    return results_root() / EXPORTS / store_key / f"{neuron_set}.hdf5"


def estimated_bytes(store, neuron_set: str, fmt: str) -> int:
    """About how big an activation export of ``neuron_set`` is: float32 for HDF5; for text, about 10 bytes a
    value (6 decimals, sign, separator)."""
    spec = store.neuron_sets[neuron_set]
    values = store.n_words * spec["layers"] * spec["units"]
    return values * (4 if fmt == "hdf5" else 10)


def prepared_hdf5(store, store_key: str, neuron_set: str) -> Path:
    """The HDF5 export of the store's ``neuron_set``, built on first request (atomically) and kept."""
    from analysis.engine.interchange import export_hdf5

    target = hdf5_path(store_key, neuron_set)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.stem}.{os.getpid()}.{os.urandom(4).hex()}.hdf5")
        try:
            export_hdf5(store, partial, neuron_set=neuron_set)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def neuron_set_of(store, requested: str | None) -> str:
    sets = list(store.neuron_sets)
    if not requested:
        return sets[0]
    if requested not in sets or not re.fullmatch(r"[a-z.]+", requested):
        raise Http404(f"This store has no neuron set “{requested}” (it has {', '.join(sets)}).")
    return requested


# ------------------------------------------------------------------------------------------------ responses


def _streamed(lines, content_type: str, name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _file(path: Path, name: str, content_type: str) -> FileResponse:
    return FileResponse(path.open("rb"), as_attachment=True, filename=name, content_type=content_type)


def download_response(view: RunView, step_id: int, name: str, neuron_set: str | None = None):
    """The response for the download ``name`` of the run's step ``step_id``; ``Http404`` for anything else."""
    step = view.step(step_id)
    fmt = format_of(step, name)
    if builds(step) == ResultKind.STORE:
        return _activations(view, step, fmt, neuron_set)
    out = filename(view.run, step, fmt)
    if fmt.name == "ranking.csv":
        ranking = ranking_of(step)  # a cross-model ranking: one per model, by store key
        rows = _crossmodel_rows(view, ranking) if isinstance(ranking, dict) else ranking_rows(ranking)
        return _streamed(_csv_stream(rows), fmt.content_type, out)
    if fmt.name == "statistics.csv":
        return _streamed(_csv_stream(statistics_rows(statistics_of(step))), fmt.content_type, out)
    if fmt.name == "curve.csv":
        return _streamed(_csv_stream(curve_rows(document_of(step))), fmt.content_type, out)
    path = result_path(ready_result(step).path)
    if fmt.name in ("stats.npz", "stats.json"):
        return _file(path / fmt.name, out, fmt.content_type)
    return _file(path, out, fmt.content_type)  # the result's own JSON document


def _activations(view: RunView, step: Step, fmt: Download, neuron_set: str | None):
    """An extraction's activations of one neuron set, in NeuroX's formats."""
    from analysis.engine.interchange import jsonl_lines

    ready_result(step)  # 404 unless the store is ready
    try:
        store = store_of(step.result_key)
    except RuntimeError as error:  # its files are gone
        raise Http404(f"{str(error)[:1].upper()}{str(error)[1:]}.") from None
    chosen = neuron_set_of(store, neuron_set)
    out = filename(view.run, step, fmt, chosen)
    if fmt.suffix == "hdf5":
        return _file(prepared_hdf5(store, step.result_key, chosen), out, fmt.content_type)
    neurox = fmt.name == "activations.json"
    lines = jsonl_lines(store, neuron_set=chosen, decimals=8 if neurox else 6, neurox_layer_numbers=neurox)
    return _streamed(lines, fmt.content_type, out)


def _crossmodel_rows(view: RunView, rankings: dict):
    """One CSV over every model of a cross-model ranking, each row naming its model."""
    names = {m.store_key: m.name for m in view.models}
    for n, (key, ranking) in enumerate(rankings.items()):
        rows = ranking_rows(ranking, model=names.get(key, key[:12]))
        header = next(rows)
        if n == 0:
            yield header
        yield from rows


def downloads_of(view: RunView) -> list[dict]:
    """What the Downloads page lists: each succeeded step with its formats (activations per neuron set, with
    their estimated sizes and whether the HDF5 file is already built)."""
    entries = []
    for step in view.steps:
        kind = step_type(step.kind)
        entry = {"step": step, "formats": kind.downloads, "sets": []}
        if kind.result_kind == ResultKind.STORE:
            try:
                store = store_of(step.result_key)
            except RuntimeError as error:
                entry["error"] = str(error)
                entries.append(entry)
                continue
            entry["words"] = store.n_words
            for neuron_set, spec in store.neuron_sets.items():
                entry["sets"].append({"name": neuron_set, "layers": spec["layers"], "units": spec["units"],
                                      "hdf5_bytes": estimated_bytes(store, neuron_set, "hdf5"),
                                      "text_bytes": estimated_bytes(store, neuron_set, "jsonl"),
                                      "hdf5_ready": hdf5_path(step.result_key, neuron_set).is_file()})
        entries.append(entry)
    return entries
