"""The pipeline with real Celery worker processes against Redis (``REDIS_URL``) on the test database.

Skipped only when ``REDIS_URL`` is unset and ``CI`` is not true; under ``CI=true`` they always run. Locally, give
them a Redis database of their own, e.g. ``REDIS_URL=redis://127.0.0.1:6379/7``, so other test runs' workers on
the same Redis do not take their messages.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from analysis import tasks
from analysis.runs import services
from analysis.runs.selectors import compute_seconds_used
from analysis.models import Result, RunState, Step, StepKind, StepState
from neurox_site.celery import app
from projects.services.attachments import attach_upload
from tests.factories import ProjectFactory
from tests.support.real_workers import BIG_CORPUS, REAL_WORKER_MARKS, run_state, wait_for
from tests.support.runs import request_for
from tests.support.uploads import upload_corpus, upload_model

pytestmark = REAL_WORKER_MARKS


def project_with_uploads(owner, tiny_bert, n_sentences=40, seed=0, project=None):
    project = project or ProjectFactory(owner=owner)
    model, corpus = upload_model(owner, tiny_bert), upload_corpus(owner, n_sentences, seed)
    attach_upload(owner, project, model)
    attach_upload(owner, project, corpus)
    return project, {"model": model, "corpus": corpus}


def test_gpu_and_cpu_workers_run_a_whole_run_and_a_second_run_reuses_everything(people, attached, celery):
    gpu = celery("worker", "-Q", "gpu", "--concurrency", "1", name="gpu")
    cpu = celery("worker", "-Q", "cpu", "--concurrency", "1", name="cpu")
    run = services.create_run(people["owner"], people["project"], request_for(attached))
    wait_for(lambda: run_state(run) in (RunState.SUCCEEDED, RunState.FAILED), 60, "the run to finish", [gpu, cpu])
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    steps = list(run.steps.all())
    assert all(s.state == StepState.SUCCEEDED and not s.reused and s.attempts == 1 for s in steps)
    assert {s.kind: s.worker.split("@")[0] for s in steps} == {
        StepKind.EXTRACT: "gpu", StepKind.STATISTICS: "cpu", StepKind.RANKING: "cpu"}
    for step in steps:
        result = Result.objects.get(key=step.result_key)
        assert result.bytes > 0 and (Path(settings.NEUROX_RESULTS_DIR) / result.path).exists()
        # metered (issue #18): the seconds it held its worker, within its wall time, and where (no CUDA here)
        wall = (step.finished_at - step.started_at).total_seconds()
        assert 0 < step.compute_seconds <= wall + 0.05 and step.device == "cpu", (step.title, step.compute_seconds)
    assert compute_seconds_used(people["owner"]) == pytest.approx(sum(s.compute_seconds for s in steps))

    # the same message delivered twice: the claim lets only the first run it
    extract = run.steps.get(kind=StepKind.EXTRACT)
    tasks.run_step.apply_async(args=[extract.pk], queue=extract.queue)
    gpu.wait_for_line("'skipped'", timeout=10)
    assert Result.objects.count() == len(steps)
    assert sorted(p.name for p in (Path(settings.NEUROX_RESULTS_DIR) / "stores").iterdir()) == [extract.result_key]

    started = time.monotonic()
    again = services.create_run(people["editor"], people["project"], request_for(attached))
    wait_for(lambda: run_state(again) == RunState.SUCCEEDED, 2, "the second run to succeed at once")
    assert time.monotonic() - started < 2
    assert all(s.reused and s.compute_seconds == 0 for s in again.steps.all())
    assert compute_seconds_used(people["editor"]) == 0


def test_two_runs_needing_the_same_missing_store_compute_it_once(people, attached, tiny_bert, celery):
    workers = [celery("worker", "-Q", "gpu,cpu", "--concurrency", "1", name=name) for name in ("one", "two")]
    stranger = people["stranger"]
    # the stranger uploads the very same files (same sha256, so the same content keys) to a project of theirs
    other_project, theirs = project_with_uploads(stranger, tiny_bert)
    request = {"rankings": [{"method": "probeless", "bootstrap": 0}], "statistics": False}
    first = services.create_run(people["owner"], people["project"], request_for(attached, **request))
    second = services.create_run(stranger, other_project, request_for(theirs, **request))
    wait_for(lambda: run_state(first) == run_state(second) == RunState.SUCCEEDED, 60, "both runs to succeed",
             workers)
    extracts = Step.objects.filter(kind=StepKind.EXTRACT, run__in=[first, second])
    assert extracts.filter(reused=False).count() == 1 and extracts.filter(reused=True).count() == 1
    assert Result.objects.filter(kind="store").count() == 1


def test_cancel_stops_a_running_extraction_and_the_worker_takes_new_work_within_seconds(people, tiny_bert, celery,
                                                                                       folders):
    # one sentence per forward pass, so the extraction lasts seconds and the cancel lands between two chunks
    worker = celery("worker", "-Q", "gpu,cpu", "--concurrency", "1", name="solo",
                    NEUROX_EXTRACT_BATCH_TOKENS="16")
    owner = people["owner"]
    slow_project, slow = project_with_uploads(owner, tiny_bert, BIG_CORPUS, seed=1)
    quick_project, quick = project_with_uploads(owner, tiny_bert, 20, seed=2)
    slow_run = services.create_run(owner, slow_project, request_for(slow))
    extract = slow_run.steps.get(kind=StepKind.EXTRACT)
    wait_for(lambda: Step.objects.filter(pk=extract.pk, state=StepState.RUNNING, done__gt=0).exists(), 30,
             "the extraction to make progress", [worker])
    quick_run = services.create_run(owner, quick_project, request_for(quick))  # queued behind the slow one
    services.cancel_run(owner, slow_run)
    cancelled_at = time.monotonic()
    quick_extract = quick_run.steps.get(kind=StepKind.EXTRACT)
    wait_for(lambda: Step.objects.filter(pk=quick_extract.pk, state__in=(StepState.RUNNING, StepState.SUCCEEDED))
             .exists(), 5, "the worker to take the next run's step", [worker])
    assert time.monotonic() - cancelled_at < 5
    wait_for(lambda: run_state(quick_run) == RunState.SUCCEEDED, 30, "the next run to succeed", [worker])
    extract.refresh_from_db()
    assert extract.state == StepState.CANCELLED and 0 < extract.done < extract.total
    assert extract.compute_seconds > 0  # a stopped attempt held the worker too
    assert slow_run.log_lines.filter(text__contains=": stopped.").exists()
    assert not Result.objects.filter(key=extract.result_key).exists()


def test_a_worker_killed_during_extraction_is_replaced_and_the_results_equal_an_uninterrupted_run(
        people, tiny_bert, celery, folders, tmp_path):
    from analysis.engine import formats
    from analysis.engine.extract import ExtractionParams, extract_activations
    from analysis.engine.methods import compute_ranking

    owner = people["owner"]
    project, uploads = project_with_uploads(owner, tiny_bert, BIG_CORPUS, seed=3)
    request = request_for(uploads, rankings=[{"method": "probeless", "bootstrap": 0}], statistics=False)
    # one sentence per forward pass, so the kill lands mid-way; the survivor must split the work alike to resume
    small_batches = {"NEUROX_EXTRACT_BATCH_TOKENS": "16"}
    doomed = celery("worker", "-Q", "gpu,cpu", "--concurrency", "1", name="doomed", **small_batches)
    run = services.create_run(owner, project, request)
    extract = run.steps.get(kind=StepKind.EXTRACT)
    # The first batch's progress is written at once, possibly before the first 32-word chunk is in the journal
    # (then there is nothing to resume: CI once killed it that early). Three chunks' worth of words reported means
    # at least the first chunk was recorded.
    three_chunks = 3 * 32
    wait_for(lambda: Step.objects.filter(pk=extract.pk, state=StepState.RUNNING, done__gte=three_chunks).exists(),
             30, "the extraction to finish its first chunks", [doomed])
    doomed.kill()
    killed_at = Step.objects.values_list("done", flat=True).get(pk=extract.pk)
    survivor = celery("worker", "-Q", "gpu,cpu", "--concurrency", "1", "-B", "-s", str(tmp_path / "beat-schedule"),
                      name="survivor", **small_batches)
    wait_for(lambda: run_state(run) in (RunState.SUCCEEDED, RunState.FAILED), 60, "the run to finish", [survivor])
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    extract.refresh_from_db()
    assert extract.attempts == 2 and extract.worker.startswith("survivor@")
    # the killed attempt was charged up to its last heartbeat, on top of the survivor's own attempt
    assert extract.compute_seconds > (extract.finished_at - extract.started_at).total_seconds()
    assert killed_at < extract.total
    assert run.log_lines.filter(text__contains="doomed@").filter(text__contains="stopped answering").exists()
    assert run.log_lines.filter(text__contains="resum").exists(), list(run.log_lines.values_list("text", flat=True))

    # the same engine calls, uninterrupted, in this process
    corpus_row = uploads["corpus"]
    corpus = formats.read_conllu(folders["media"] / corpus_row.storage_prefix / corpus_row.metadata["word_file"],
                                 "upos")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers run (OMP_NUM_THREADS=1), with the same chunks: the same arithmetic
    try:
        reference = extract_activations(tiny_bert, corpus, tmp_path / "reference",
                                        ExtractionParams(neuron_sets=("hidden",), label_column="upos"),
                                        chunk_words=32)
    finally:
        torch.set_num_threads(threads)
    store = services_store(extract.result_key)
    assert store.neuron_sets == reference.neuron_sets
    for layer in range(reference.neuron_sets["hidden"]["layers"]):
        np.testing.assert_array_equal(np.asarray(store.array("hidden", layer)),
                                      np.asarray(reference.array("hidden", layer)))
    ranking_step = run.steps.get(kind=StepKind.RANKING)
    saved = json.loads((Path(settings.NEUROX_RESULTS_DIR) / Result.objects.get(key=ranking_step.result_key).path)
                       .read_text())
    expected = compute_ranking(reference, "probeless", neuron_sets=["hidden"], layers=None, seed=0).to_dict()
    assert saved["scores"] == expected["scores"] and saved["order"] == expected["order"]


def services_store(key):
    from analysis.steps.storage import open_store

    return open_store(key)


def test_a_failing_step_fails_its_run_cleanly_while_another_users_run_succeeds(people, attached, tiny_bert,
                                                                               celery, folders):
    worker = celery("worker", "-Q", "gpu,cpu", "--concurrency", "1", name="solo")
    corpus = attached["corpus"]
    (folders["media"] / corpus.storage_prefix / corpus.metadata["word_file"]).write_text(
        "1\tchanged\tchanged\tNOUN\t_\t_\t0\troot\t_\t_\n\n")
    broken = services.create_run(people["owner"], people["project"], request_for(attached))
    stranger = people["stranger"]
    other_project, other = project_with_uploads(stranger, tiny_bert, 30, seed=4)
    fine = services.create_run(stranger, other_project, request_for(other))
    wait_for(lambda: run_state(broken) == RunState.FAILED and run_state(fine) == RunState.SUCCEEDED, 60,
             "one run to fail and the other to succeed", [worker])
    broken.refresh_from_db()
    assert broken.error.startswith("Extract activations: tiny bert × toy.conllu failed: The corpus “toy.conllu” "
                                   "no longer matches what was uploaded")
    assert "Traceback" not in broken.error and "Traceback" not in broken.steps.get(kind=StepKind.EXTRACT).error
    assert "Traceback" in worker.log(tail=10**7)  # the full one goes to the worker's log
    assert set(broken.steps.exclude(kind=StepKind.EXTRACT).values_list("state", flat=True)) == {StepState.CANCELLED}


def test_a_step_whose_queue_message_was_lost_is_sent_again(people, attached, celery, tmp_path):
    run = services.create_run(people["owner"], people["project"], request_for(attached))
    extract = run.steps.get(kind=StepKind.EXTRACT)
    assert extract.state == StepState.QUEUED
    app.control.purge()  # what a Redis restart without persistence does to every queued message
    worker = celery("worker", "-Q", "gpu,cpu", "--concurrency", "1", "-B", "-s", str(tmp_path / "beat-schedule"),
                    name="solo", NEUROX_STEP_RESEND_SECONDS="2")
    wait_for(lambda: run_state(run) == RunState.SUCCEEDED, 45, "the run to succeed", [worker])
    assert run.log_lines.filter(text__contains="no worker took it for 2 s; sent again").exists()
    extract.refresh_from_db()
    assert extract.attempts == 1


def test_crossmodel_on_the_cpu_worker_and_model_ablation_on_the_gpu_worker(people, attached, celery, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from projects.services.library import create_test_set_upload
    from tests.support.tiny_models import make_tiny_model

    owner, project = people["owner"], people["project"]
    gpt2 = upload_model(owner, make_tiny_model("gpt2", tmp_path / "tiny-gpt2"), name="tiny gpt2")
    test_set = create_test_set_upload(owner, file=SimpleUploadedFile("t.txt", b"the cat sat on the mat .\n"
                                                                          b"a dog ran to the park .\n"), name="two")
    for upload in (gpt2, test_set):
        attach_upload(owner, project, upload)
    gpu = celery("worker", "-Q", "gpu", "--concurrency", "1", name="gpu")
    cpu = celery("worker", "-Q", "cpu", "--concurrency", "1", name="cpu")
    run = services.create_run(owner, project, request_for(
        attached, models=[attached["model"].pk, gpt2.pk], rankings=[{"method": "probeless", "bootstrap": 0}],
        statistics=False, crossmodel=[{"method": "maxcorr"}],
        model_ablation={"test_set": test_set.pk, "percents": [100], "modes": ["top"]}))
    wait_for(lambda: run_state(run) in (RunState.SUCCEEDED, RunState.FAILED), 90, "the run to finish", [gpu, cpu])
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    workers = {(s.kind, s.worker.split("@")[0]) for s in run.steps.all()}
    assert workers == {(StepKind.EXTRACT, "gpu"), (StepKind.RANKING, "cpu"), (StepKind.CROSSMODEL, "cpu"),
                       (StepKind.MODEL_ABLATION, "gpu")}
    for step in run.steps.filter(kind__in=(StepKind.CROSSMODEL, StepKind.MODEL_ABLATION)):
        result = Result.objects.get(key=step.result_key)
        assert json.loads((Path(settings.NEUROX_RESULTS_DIR) / result.path).read_text())
