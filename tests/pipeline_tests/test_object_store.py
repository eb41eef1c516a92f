"""Results and uploads in a real S3-compatible server (moto's server process on loopback), one process playing two
nodes by switching its data folder: what one node publishes, another fetches whole; a partial local copy is
replaced; the cache stays under its bound; a reclaimed result leaves the bucket; an upload missing from the bucket
fails its step with a message saying so. The same with real worker processes: test_object_store_nodes.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from analysis.runs import services
from analysis.models import Result, ResultKind, ResultState, RunState, StepKind, StepState, results_root
from analysis.steps import object_store
from analysis.steps.storage import open_store, publish_json, result_path
from projects.models import CorpusUpload, ModelUpload
from projects.services.storage import UploadMissing, local_folder
from tests.support.clients import api_client_for, client_for
from tests.support.corpora import conllu_text
from tests.support.runs import request_for
from tests.support.urls import run_page_url

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def as_node(settings, folder):
    """This process now plays the node whose data folder is ``folder``."""
    settings.DATA_DIR = folder
    settings.NEUROX_RESULTS_DIR = folder / "results"


def build_folder_result(relative: str) -> dict[str, bytes]:
    """A folder result like an activation store: two .npy arrays and a JSON file."""
    target = results_root() / relative
    target.mkdir(parents=True)
    np.save(target / "hidden.L0.npy", np.arange(12, dtype=np.float16).reshape(3, 4))
    np.save(target / "hidden.L1.npy", np.ones((3, 4), dtype=np.float16))
    (target / "meta.json").write_text(json.dumps({"key": relative}))
    return {p.name: p.read_bytes() for p in target.iterdir()}


def test_with_no_environment_results_and_uploads_stay_in_local_folders(tmp_path):
    """The embedded default: no NEUROX_* variables, so local storage and no results storage at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEUROX_", "AWS_", "DATABASE_URL", "REDIS_URL"))}
    code = ("import os; os.environ['DJANGO_SETTINGS_MODULE']='neurox_site.settings'; "
            "from django.conf import settings as s; "
            "print(sorted(s.STORAGES), s.STORAGES['default']['BACKEND'], s.NEUROX_RESULTS_IN_S3)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**env, "NEUROX_DATA_DIR": str(tmp_path)},
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    assert out == "['default', 'staticfiles'] django.core.files.storage.FileSystemStorage False"


def test_without_the_results_storage_a_result_is_its_local_path_and_nothing_is_published(folders, s3_server):
    assert not object_store.enabled()
    publish_json(results_root() / "rankings/k.json", {"a": 1})
    object_store.publish("rankings/k.json")  # no-op
    assert result_path("rankings/k.json") == results_root() / "rankings/k.json"
    assert not (results_root() / object_store.CACHE).exists()


def test_a_result_published_by_one_node_is_fetched_whole_by_another(settings, s3_node):
    server, bucket = s3_node["server"], s3_node["bucket"]
    as_node(settings, s3_node["b"])  # the worker node builds and publishes
    files = build_folder_result("stores/abc")
    publish_json(results_root() / "rankings/r1.json", {"method": "probeless"})
    object_store.publish("stores/abc")
    object_store.publish("rankings/r1.json")
    assert server.keys(bucket) == [
        "results/data/rankings/r1.json", "results/data/stores/abc/hidden.L0.npy",
        "results/data/stores/abc/hidden.L1.npy", "results/data/stores/abc/meta.json",
        "results/manifests/rankings/r1.json.json", "results/manifests/stores/abc.json"]

    as_node(settings, s3_node["a"])  # the web node has nothing until first use
    assert not (s3_node["a"] / "results" / "stores").exists()
    folder = result_path("stores/abc")
    assert folder == s3_node["a"] / "results" / "stores" / "abc"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    assert np.load(folder / "hidden.L0.npy", mmap_mode="r")[2, 3] == 11  # a real file: memory-mapped
    assert json.loads(result_path("rankings/r1.json").read_text()) == {"method": "probeless"}
    assert not list((s3_node["a"] / "results" / object_store.FETCHING).iterdir())  # no download left behind

    # a second use reads the local copy: nothing is downloaded again even if the bucket lost it
    server.client().delete_object(Bucket=bucket, Key="results/data/rankings/r1.json")
    assert json.loads(result_path("rankings/r1.json").read_text()) == {"method": "probeless"}


def test_a_partial_local_copy_is_replaced_by_the_published_result_and_a_missing_one_says_so(settings, s3_node):
    as_node(settings, s3_node["b"])
    files = build_folder_result("stores/abc")
    object_store.publish("stores/abc")
    as_node(settings, s3_node["a"])
    partial = results_root() / "stores" / "abc"
    partial.mkdir(parents=True)
    (partial / "journal.jsonl").write_text("{}\n")  # an interrupted extraction on this node
    assert {p.name: p.read_bytes() for p in result_path("stores/abc").iterdir()} == files

    with pytest.raises(RuntimeError, match="the activation store 0123456789ab is missing or incomplete"):
        open_store("0123456789abcdef")  # in neither place


def test_the_cache_keeps_to_its_bound_least_recently_used_first(settings, s3_node):
    as_node(settings, s3_node["b"])
    for n in range(3):
        publish_json(results_root() / f"rankings/r{n}.json", {"n": n, "pad": "x" * 1000})
        object_store.publish(f"rankings/r{n}.json")
    as_node(settings, s3_node["a"])
    one = (s3_node["b"] / "results" / "rankings" / "r0.json").stat().st_size
    settings.NEUROX_RESULTS_CACHE_BYTES = 2 * one
    long_ago = time.time() - 3600
    for n in (0, 1):
        result_path(f"rankings/r{n}.json")
        os.utime(object_store._marker(f"rankings/r{n}.json"), (long_ago + n, long_ago + n))
    result_path("rankings/r2.json")  # the third: r0, used longest ago, goes
    assert sorted(relative for _, _, relative in object_store.cached()) == ["rankings/r1.json", "rankings/r2.json"]
    assert not (results_root() / "rankings" / "r0.json").exists()
    assert json.loads(result_path("rankings/r0.json").read_text())["n"] == 0  # fetched again when needed
    assert len(object_store.cached()) == 2


@pytest.mark.django_db
def test_reclaiming_a_result_removes_it_from_the_bucket(settings, s3_node):
    server, bucket = s3_node["server"], s3_node["bucket"]
    publish_json(results_root() / "rankings/gone.json", {"n": 1})
    object_store.publish("rankings/gone.json")
    Result.objects.create(kind=ResultKind.RANKING, key="gone", state=ResultState.READY, path="rankings/gone.json",
                          bytes=9)
    assert services.reclaim_unreferenced_results() == (1, 9)
    assert server.keys(bucket, "results/") == []
    assert not (results_root() / "rankings" / "gone.json").exists()


@pytest.mark.django_db
def test_uploads_go_to_the_bucket_and_a_run_computes_from_there_in_process(
        settings, people, tiny_bert, s3_node, django_capture_on_commit_callbacks):
    """Eager execution: upload through the API into the bucket, extract and rank from the local copies a node
    makes of them, publish the results, and read them back on a node with an empty folder."""
    server, bucket = s3_node["server"], s3_node["bucket"]
    settings.NEUROX_RESULTS_IN_S3 = True
    owner, project = people["owner"], people["project"]
    api = api_client_for(people, "owner")
    files = [SimpleUploadedFile(p.name, p.read_bytes()) for p in sorted(tiny_bert.iterdir()) if p.is_file()]
    model = api.post("/api/v1/uploads/models/", {"files": files, "name": "tiny"}, format="multipart")
    corpus = api.post("/api/v1/uploads/corpora/", {"file": SimpleUploadedFile("toy.conllu", conllu_text(40, 0).encode()),
                                                   "label_column": "upos"}, format="multipart")
    assert model.status_code == corpus.status_code == 201, (model.content, corpus.content)
    uploaded = {"model": model.json()["id"], "corpus": corpus.json()["id"]}
    for kind, pk in uploaded.items():
        assert api.post(f"/api/v1/projects/{project.pk}/uploads/", {"kind": kind, "upload": pk},
                        format="json").status_code == 201
    assert any(key.endswith("/model.safetensors") for key in server.keys(bucket, "uploads/"))
    assert not (s3_node["a"] / "media").exists()  # nothing kept on this node's disk

    rows = {"model": ModelUpload.objects.get(pk=uploaded["model"]),
            "corpus": CorpusUpload.objects.get(pk=uploaded["corpus"])}
    request = request_for(rows, rankings=[{"method": "probeless", "bootstrap": 0}], statistics=False)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(owner, project, request)
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    assert (s3_node["a"] / "cache" / "uploads").is_dir()  # the uploads' local copies, made from the bucket
    assert any(key.startswith("results/manifests/stores/") for key in server.keys(bucket, "results/"))

    as_node(settings, s3_node["b"])  # another node, empty: the pages fetch what they read
    from analysis.workspace import loaded

    loaded.clear()
    page = client_for(people, "viewer").get(run_page_url(run, "analysis/"))
    assert page.status_code == 200
    assert (s3_node["b"] / "results" / "stores").is_dir() and (s3_node["b"] / "results" / "rankings").is_dir()


@pytest.mark.django_db
def test_an_upload_missing_from_the_bucket_fails_its_step_saying_so(
        settings, people, attached_in_s3, s3_node, django_capture_on_commit_callbacks):
    server, bucket = s3_node["server"], s3_node["bucket"]
    corpus = attached_in_s3["corpus"]
    server.client().delete_object(Bucket=bucket, Key=corpus.storage_name(corpus.metadata["word_file"]))
    with pytest.raises(UploadMissing, match="missing from storage"):
        local_folder(CorpusUpload.objects.get(pk=corpus.pk))
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(attached_in_s3))
    run.refresh_from_db()
    extract = run.steps.get(kind=StepKind.EXTRACT)
    assert run.state == RunState.FAILED and extract.state == StepState.FAILED
    assert extract.error == (f"The file toy.conllu of the upload “toy.conllu” is missing from storage "
                             f"({corpus.storage_name('toy.conllu')}); upload it again, or ask an operator to "
                             "restore it.")
    page = client_for(people, "owner").get(run_page_url(run))
    assert page.status_code == 200 and "is missing from storage" in page.content.decode()

