"""What a worker does with a claimed step: call the engine with a Job wired to the Step row, write the result
under ``NEUROX_RESULTS_DIR`` (atomically: a file or folder that exists is complete), and report back through
``analysis.services``. Nothing here holds a transaction while computing.

The Job adapter writes progress to the Step row at most every ``PROGRESS_EVERY`` seconds (and at the end),
batches log lines, and checks the run's state for cancellation at most every ``STOP_CHECK_EVERY`` seconds. A
thread heartbeats while the step runs, so a long model load is not mistaken for a dead worker, and writes log
lines left waiting in the batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection

from analysis.engine.formats import CorpusError
from analysis.engine.jobs import Cancelled, Job
from analysis.engine.loading import ModelLoadError, UnsupportedArchitecture
from analysis.engine.modeldir import ModelDirError
from analysis.engine.store import StoreError

from . import services
from .models import Step, StepKind, results_root
from .provenance import library_versions

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.5
STOP_CHECK_EVERY = 0.25


class StepJob:
    """The engine's Job for one step: progress, log and cancellation go to the database, throttled."""

    def __init__(self, step: Step):
        self.step_id = step.pk
        self.logs = services.LogBuffer(step.run_id, step.pk)
        self.last_progress = 0.0
        self.last_stop_check = 0.0
        self.stopping = False
        self.pending_progress = None

    def progress(self, done: int, total: int, unit: str) -> None:
        self.pending_progress = (done, total, unit)
        now = time.monotonic()
        if now - self.last_progress >= PROGRESS_EVERY or done >= total:
            self.last_progress = now
            self.pending_progress = None
            services.heartbeat(self.step_id, done, total, unit)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self.stopping and now - self.last_stop_check >= STOP_CHECK_EVERY:
            self.last_stop_check = now
            self.stopping = services.should_stop(self.step_id)
        return self.stopping

    def job(self) -> Job:
        return Job(on_progress=self.progress, on_log=self.logs.add, should_stop=self.should_stop)

    def close(self) -> None:
        if self.pending_progress is not None:
            services.heartbeat(self.step_id, *self.pending_progress)
        self.logs.flush()


class Heartbeat:
    """From a thread while the step runs: heartbeats the step every ``every`` seconds and writes the log lines
    that ``logs`` holds once they are due, so a line logged before a long quiet computation reaches the page
    within about ``logs.every`` seconds instead of at the next line or the step's end."""

    def __init__(self, step_id: int, every: float, logs: services.LogBuffer | None = None):
        self.step_id, self.every, self.logs = step_id, every, logs
        self.tick = min(every, logs.every) if logs is not None else every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-step-{step_id}")

    def _beat(self) -> None:
        last_beat = time.monotonic()
        try:
            while not self.stopped.wait(self.tick):
                if self.logs is not None:
                    self.logs.flush_if_due()
                if time.monotonic() - last_beat >= self.every:
                    last_beat = time.monotonic()
                    services.heartbeat(self.step_id)
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(timeout=10)


# ------------------------------------------------------------------------------------------------ paths


def stores_root() -> Path:
    return results_root() / "stores"


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _publish_folder(build, target: Path) -> None:
    """``build(folder)`` fills a fresh folder beside ``target``, which is then renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(partial)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def open_store(key: str):
    from analysis.engine.store import open_complete

    store = open_complete(stores_root() / key, key)
    if store is None:
        raise RuntimeError(f"the activation store {key[:12]} is missing or incomplete; retry the run to rebuild it")
    return store


# ------------------------------------------------------------------------------------------------ each kind


def compute_extract(step: Step, job: Job) -> tuple[str, dict]:
    from analysis.engine.extract import ExtractionParams, extract_activations
    from analysis.engine.formats import read_corpus
    from analysis.engine.loading import load_model
    from analysis.engine.store import open_complete
    from projects.models import CorpusUpload, ModelUpload
    from projects.services.storage import local_folder

    key = step.result_key
    relative = f"stores/{key}"
    existing = open_complete(results_root() / relative, key)
    if existing is not None:  # a redelivered step whose previous attempt finished the store
        job.log(f"activation store {key[:12]} is already complete")
        return relative, {"words": existing.n_words, "neuron_sets": existing.neuron_sets}
    model = ModelUpload.objects.get(pk=step.params["model"])
    corpus_row = CorpusUpload.objects.get(pk=step.params["corpus"])
    corpus_folder = local_folder(corpus_row)
    label_file = corpus_row.metadata.get("label_file")
    corpus = read_corpus(corpus_row.format, corpus_folder / corpus_row.metadata["word_file"],
                         filename=corpus_row.metadata["word_file"], label_column=corpus_row.label_column or None,
                         label_source=corpus_folder / label_file if label_file else None, label_filename=label_file,
                         note_sentences_over=None)
    if corpus.source_sha256 != corpus_row.sha256:
        raise RuntimeError(f"the corpus “{corpus_row.name}” no longer matches what was uploaded (its files "
                           "changed in storage); upload it again")
    job.log(f"corpus: {len(corpus.sentences):,} sentences, {corpus.n_words:,} words")
    params = ExtractionParams(**{**step.params["extraction"], "neuron_sets": tuple(step.params["extraction"]
                                                                                   ["neuron_sets"])})
    loaded = load_model(local_folder(model), sha256=model.sha256)
    job.log(f"model: {loaded.info.architecture}, {loaded.info.n_layers} layers, on {loaded.device}")
    store = extract_activations(loaded, corpus, stores_root(), params,
                                chunk_words=settings.NEUROX_EXTRACT_CHUNK_WORDS,
                                max_tokens_per_batch=settings.NEUROX_EXTRACT_BATCH_TOKENS, job=job)
    if store.meta.get("key") != key:
        raise RuntimeError(f"the engine built store {store.meta.get('key')} where {key} was expected")
    return relative, {"words": store.n_words, "neuron_sets": store.neuron_sets}


def _publish_json(target: Path, data: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, target)


def compute_ranking(step: Step, job: Job) -> tuple[str, dict]:
    from analysis.engine.methods import compute_ranking as rank
    from analysis.engine.ranking import Ranking

    relative = f"rankings/{step.result_key}.json"
    target = results_root() / relative
    if not target.is_file():
        p = step.params
        ranking = rank(open_store(p["store_key"]), p["method"], neuron_sets=p["neuron_sets"], layers=p["layers"],
                       seed=p["seed"], bootstrap=p["bootstrap"], consensus=p.get("consensus"), job=job,
                       **p["options"])
        _publish_json(target, ranking.to_dict())
    ranking = Ranking.from_dict(json.loads(target.read_text(encoding="utf-8")))  # the engine knows its own keys
    return relative, {"method": ranking.method, "neurons": len(ranking.neuron_ids), "metrics": ranking.metrics}


def compute_statistics(step: Step, job: Job) -> tuple[str, dict]:
    from analysis.engine.stats import compute_neuron_stats

    relative = f"statistics/{step.result_key}"
    target = results_root() / relative
    if not target.is_dir():
        p = step.params
        store = open_store(p["store_key"])

        def build(folder: Path) -> None:
            stats = compute_neuron_stats(store.features(p["neuron_sets"], p["layers"]), store.words,
                                         store.sentence_offsets, store.labels, store.label_names, job=job)
            stats.save(folder / "stats")

        _publish_folder(build, target)
    return relative, {"files": sorted(p.name for p in target.iterdir())}


def compute_probe_ablation(step: Step, job: Job) -> tuple[str, dict]:
    """Train the lca probe on the training sentences, then ablate its neurons along its own ranking, scoring
    every point on the test sentences (the same split and seed as the lca ranking step)."""
    from analysis.engine.probe_ablation import train_and_ablate
    from analysis.engine.splits import split_by_sentence

    relative = f"curves/{step.result_key}.json"
    target = results_root() / relative
    if not target.is_file():
        p = step.params
        store = open_store(p["store_key"])
        features = store.features(p["neuron_sets"], p["layers"])
        split = split_by_sentence(store.sentence_offsets, seed=p["seed"])
        curve = train_and_ablate(features, store.labels, label_names=store.label_names, split=split,
                                 percents=p["percents"], modes=p["modes"], random_seeds=p["random_seeds"],
                                 seed=p["seed"], job=job)
        _publish_json(target, curve.to_dict())
    data = json.loads(target.read_text(encoding="utf-8"))
    return relative, {"baseline_accuracy": data.get("baseline_accuracy"), "n_neurons": data.get("n_neurons")}


def _crossmodel_rankings(method: str, models, names, options: dict, job: Job):
    """The engine's ranking call for one cross-model method: a Ranking per model, in ``models`` order."""
    from analysis.engine import crossmodel

    if method in ("maxcorr", "mincorr"):
        return crossmodel.maxcorr_mincorr_rankings(models, model_names=names, job=job)[method]
    if method == "linreg":
        return crossmodel.linreg_rankings(models, model_names=names, job=job, **options)
    return crossmodel.svcca_rankings(models, model_names=names, job=job, **options)[0]


def compute_crossmodel(step: Step, job: Job) -> tuple[str, dict]:
    """One cross-model method over every store of the run; models are named by store key (the result is shared
    by every run over the same stores, whatever the models were called there)."""
    relative = f"rankings/{step.result_key}.json"
    target = results_root() / relative
    if not target.is_file():
        p = step.params
        models = [open_store(key).features(p["neuron_sets"], p["layers"]) for key in p["store_keys"]]
        rankings = _crossmodel_rankings(p["method"], models, p["store_keys"], p["options"], job)
        _publish_json(target, {"method": p["method"], "store_keys": p["store_keys"], "options": p["options"],
                               "rankings": [dict(r.to_dict(), store_key=key)
                                            for key, r in zip(p["store_keys"], rankings)]})
    data = json.loads(target.read_text(encoding="utf-8"))
    return relative, {"method": data["method"], "models": len(data["rankings"]),
                      "neurons": [len(r["neurons"]) for r in data["rankings"]]}


def _read_test_set(test_set_row):
    from analysis.engine.formats import read_test_set
    from projects.services.storage import local_folder

    folder = local_folder(test_set_row)
    source, reference = test_set_row.metadata["source_file"], test_set_row.metadata.get("reference_file")
    test_set = read_test_set(folder / source, folder / reference if reference else None, source_filename=source,
                             reference_filename=reference)
    if test_set.source_sha256 != test_set_row.sha256:
        raise RuntimeError(f"the test set “{test_set_row.name}” no longer matches what was uploaded (its files "
                           "changed in storage); upload it again")
    return test_set


def _has_own_task(lm) -> bool:
    """Whether the model measures a task of its own (a causal LM, a translation model, an encoder with a
    masked-LM head); an encoder without a head (e.g. MiniLM's ``BertModel``) is measured through a probe."""
    return lm.kind != "encoder" or getattr(lm.model, "get_output_embeddings", lambda: None)() is not None


PROBE_METRIC = "probe accuracy on the corpus's test sentences, neurons zeroed inside the model"


def _probe_task_through_model(step: Step, lm, model_name: str, job: Job):
    """For an encoder without a task of its own: train a probe on the ranking's neurons over the training
    sentences of the run's labelled corpus (the same split and seed as the lca steps), then measure its accuracy
    on the test sentences with their activations read through the (ablated) model: ablation then changes what
    the model computes, not just what the probe sees."""
    from analysis.engine.loading import model_max_tokens
    from analysis.engine.manipulation import probe_input_rows
    from analysis.engine.model_ablation import probe_task
    from analysis.engine.probe import train_probe
    from analysis.engine.splits import split_by_sentence

    ranking_step = step.needs.get(kind=StepKind.RANKING)
    rp = ranking_step.params
    store = open_store(rp["store_key"])
    if not store.label_names:
        raise RuntimeError(f"{model_name} ({lm.info.architecture}) is an encoder without a masked-LM head, so "
                           "model-level ablation measures a probe's accuracy on labelled words, and this run's "
                           "corpus has no labels; choose a corpus read with a label column")
    features = store.features(rp["neuron_sets"], rp["layers"])
    split = split_by_sentence(store.sentence_offsets, seed=step.params["seed"])
    job.log(f"{model_name} ({lm.info.architecture}) is an encoder without a masked-LM head, so the metric is "
            f"{PROBE_METRIC}; the test set is not used")
    probe = train_probe(features, store.labels, label_names=store.label_names, train=split.train, dev=split.dev,
                        test=split.test, seed=step.params["seed"], job=job.without_progress())
    job.log(f"probe trained on {len(split.train):,} words: test accuracy {probe.metrics.get('test_accuracy', 0):.4f}"
            " (from the store)")
    offsets, words, names = store.sentence_offsets, store.words, store.label_names
    limit = model_max_tokens(lm.tokenizer, lm.model.config)
    sentences, labels, too_long = [], [], 0
    for s in sorted(set(np.searchsorted(offsets, split.test, side="right") - 1)):
        start, end = int(offsets[s]), int(offsets[s + 1])
        if len(lm.tokenizer([words[start:end]], is_split_into_words=True)["input_ids"][0]) > limit:
            too_long += 1
            continue
        sentences.append(words[start:end])
        labels.append([names[i] if i >= 0 else "" for i in store.labels[start:end]])
    if too_long:
        job.log(f"{too_long} test sentences are longer than the model takes in one pass and are left out")
    if not sentences:
        raise RuntimeError("the corpus has no test sentences short enough to score the probe on")
    aggregation = step.run.request.get("aggregation", "last")
    task = probe_task(probe, lambda batch: probe_input_rows(lm, probe, batch, aggregation), sentences, labels)
    task.info.update(sentences=len(sentences), left_out_too_long=too_long, trained_on_words=len(split.train),
                     probe_test_accuracy_from_store=probe.metrics.get("test_accuracy"))
    return task


def compute_model_ablation(step: Step, job: Job) -> tuple[str, dict]:
    """Remove the model's neurons cumulatively along one ranking (each mode an order: top, bottom, random with
    ``random_seeds`` seeds) and measure its own task on the test set at each percent removed; an encoder without a
    task of its own is measured by a probe's accuracy instead (:func:`_probe_task_through_model`)."""
    from analysis.engine.loading import load_model
    from analysis.engine.model_ablation import ablation_curve, task_for
    from analysis.engine.ranking import Ranking
    from projects.models import ModelUpload, TestSetUpload
    from projects.services.storage import local_folder

    relative = f"curves/{step.result_key}.json"
    target = results_root() / relative
    if not target.is_file():
        p = step.params
        ranking_file = results_root() / "rankings" / f"{p['ranking_key']}.json"
        if not ranking_file.is_file():
            raise RuntimeError(f"the ranking {p['ranking_key'][:12]} is missing; retry the run to rebuild it")
        ranking = Ranking.from_dict(json.loads(ranking_file.read_text(encoding="utf-8")))
        test_set = _read_test_set(TestSetUpload.objects.get(pk=p["test_set"]))
        model = ModelUpload.objects.get(pk=p["model"])
        lm = load_model(local_folder(model), sha256=model.sha256)
        job.log(f"model: {lm.info.architecture} on {lm.device}; test set: {len(test_set.sources):,} sentences")
        if _has_own_task(lm):
            task = task_for(lm, texts=test_set.sources, references=test_set.references, log=job.log)
            job.log(f"metric: {task.name} {task.primary}")
        else:
            task = _probe_task_through_model(step, lm, f"“{model.name}”", job)
        total = len(ranking.neuron_ids)
        counts = sorted({max(1, round(total * percent / 100)) for percent in p["percents"]})
        orders = [m for m in ("top", "bottom") if m in p["modes"]]
        seeds = [p["seed"] + i for i in range(p["random_seeds"])] if "random" in p["modes"] else []
        evaluations = (1 + len(orders) * len(counts)) * bool(orders) + len(seeds) * (1 + len(counts))
        done, curve, random_curves = 0, None, []
        for orders_now, seed in ([(orders, p["seed"])] if orders else []) + [(["random"], s) for s in seeds]:
            part = ablation_curve(lm, ranking, task, orders=orders_now, steps=counts, seed=seed,
                                  job=job.part(done, evaluations))
            done += 1 + len(orders_now) * (len(part["x"]["count"]) - 1)
            if curve is None:
                curve = part
            if orders_now == ["random"]:
                random_curves.append(part["curves"]["random"])
            else:
                curve["curves"].update(part["curves"])
        if random_curves:  # the mean over the random orders, and each of them
            curve["curves"]["random"] = {metric: np.mean([c[metric] for c in random_curves], axis=0).tolist()
                                         for metric in curve["metrics"]}
            curve["random_curves"] = random_curves
        curve["params"] = {"percents": p["percents"], "modes": p["modes"], "random_seeds": p["random_seeds"],
                           "seed": p["seed"], "ranking_method": ranking.method}
        curve["metric_description"] = PROBE_METRIC if task.name == "probe" else f"{task.name} {task.primary}"
        _publish_json(target, curve)
    data = json.loads(target.read_text(encoding="utf-8"))
    return relative, {"task": data.get("task"), "primary": data.get("primary"), "baseline": data.get("baseline"),
                      "total_neurons": data.get("total_neurons")}


COMPUTE = {StepKind.EXTRACT: compute_extract, StepKind.RANKING: compute_ranking,
           StepKind.STATISTICS: compute_statistics, StepKind.PROBE_ABLATION: compute_probe_ablation,
           StepKind.CROSSMODEL: compute_crossmodel, StepKind.MODEL_ABLATION: compute_model_ablation}


# ------------------------------------------------------------------------------------------------ errors


# Errors whose text is written for the person who started the run: the engine's typed errors, and the ValueError /
# RuntimeError raised here (e.g. a corpus whose stored files changed). Other engine errors are ValueErrors too.
MESSAGE_ERRORS = (CorpusError, ModelDirError, ModelLoadError, UnsupportedArchitecture, StoreError, ValueError,
                  RuntimeError)


def explain(step: Step, error: BaseException) -> str:
    """One paragraph a person can act on; the traceback goes to the worker's log only."""
    from celery.exceptions import SoftTimeLimitExceeded

    name = type(error).__name__
    torch = sys.modules.get("torch")  # loaded by the step if it used a model; not imported just to check
    if isinstance(error, MemoryError) or (torch is not None and isinstance(error, torch.cuda.OutOfMemoryError)):
        return (f"{step.title} ran out of memory. Choose fewer neuron sets or layers, a smaller corpus, or run it "
                "on a worker with more memory.")
    if isinstance(error, SoftTimeLimitExceeded):
        return (f"{step.title} took longer than the time limit ({settings.CELERY_TASK_SOFT_TIME_LIMIT} s). Choose "
                "a smaller corpus or fewer resamples.")
    if isinstance(error, MESSAGE_ERRORS):
        text = str(error)
        return f"{text[:1].upper()}{text[1:]}".rstrip(".") + "."
    return (f"Unexpected error ({name}: {str(error)[:300]}). The full traceback is in the worker's log; "
            "retry the run, and report it if it happens again.")


# ------------------------------------------------------------------------------------------------ the whole step


def execute(step_id: int, worker: str) -> str:
    """Claim the step, compute it, and finish, fail or stop it. Returns what happened (for the worker log)."""
    step = services.claim_step(step_id, worker)
    if step is None:
        return "skipped"
    adapter = StepJob(step)
    # Eager execution (unit tests only) runs inside the caller's transaction, which another connection cannot see.
    beating = contextlib.nullcontext() if settings.CELERY_TASK_ALWAYS_EAGER else \
        Heartbeat(step.pk, settings.NEUROX_STEP_HEARTBEAT_SECONDS, adapter.logs)
    try:
        with beating:
            relative, meta = COMPUTE[step.kind](step, adapter.job())
        adapter.close()
        # the one place a result records what computed it (shown by analysis.provenance)
        meta = {**meta, "versions": library_versions()}
        services.finish_step(step, relative, tree_bytes(results_root() / relative), meta)
        return "succeeded"
    except Cancelled:
        adapter.close()
        services.step_stopped(step)
        return "cancelled"
    except Exception as error:  # noqa: BLE001 — every failure becomes the step's reason
        log.exception("step %s (%s) failed", step.pk, step.title)
        adapter.close()
        services.fail_step(step, explain(step, error))
        return "failed"
