"""Two nodes that share no folder, on one machine: this test process is the web node (data folder ``node-a``), a
real Celery worker process is the worker node (``node-b``), both on the same PostgreSQL, Redis and a real
S3-compatible server process (moto's server mode on loopback). Uploads reach the worker from the bucket, its
results reach the web node's pages and downloads through the bucket only.

Needs PostgreSQL and Redis like the other real-worker tests, e.g.
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/neurox_s3 REDIS_URL=redis://127.0.0.1:6379/6``.
"""

from __future__ import annotations

import json

from analysis.runs import services
from analysis.models import Result, RunState, StepKind, StepState
from analysis.steps import object_store
from tests.support.clients import client_for
from tests.support.real_workers import REAL_WORKER_MARKS, run_state, wait_for
from tests.support.runs import request_for
from tests.support.urls import run_page_url

pytestmark = REAL_WORKER_MARKS


def files_under(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_worker_node_without_the_web_nodes_folder_computes_from_s3_and_the_web_node_reads_its_results(
        people, attached_in_s3, s3_node, celery):
    node_a, node_b, server, bucket = s3_node["a"], s3_node["b"], s3_node["server"], s3_node["bucket"]
    worker = celery("worker", "-Q", "gpu,cpu", "--concurrency", "1", name="node-b", **s3_node["worker_env"])
    assert not (node_a / "media").exists()  # the uploads went to the bucket only
    request = request_for(attached_in_s3, rankings=[{"method": "probeless", "bootstrap": 0}], statistics=False)
    run = services.create_run(people["owner"], people["project"], request)
    wait_for(lambda: run_state(run) in (RunState.SUCCEEDED, RunState.FAILED), 90, "the run to finish", [worker])
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    extract, ranking = run.steps.get(kind=StepKind.EXTRACT), run.steps.get(kind=StepKind.RANKING)
    assert {s.worker.split("@")[0] for s in run.steps.all()} == {"node-b"}

    # the worker node made its own copies of the uploads from the bucket and built the results in its folder
    uploads = {attached_in_s3["model"].uuid, attached_in_s3["corpus"].uuid}
    assert {p.name for p in (node_b / "cache" / "uploads").iterdir()} == {str(u) for u in uploads}
    store_b = node_b / "results" / "stores" / extract.result_key
    ranking_b = node_b / "results" / "rankings" / f"{ranking.result_key}.json"
    assert any(p.name.endswith(".npy") for p in store_b.iterdir()) and ranking_b.is_file()
    # ... published them: manifests in the bucket
    manifests = server.keys(bucket, "results/manifests/")
    assert manifests == sorted([f"results/manifests/stores/{extract.result_key}.json",
                                f"results/manifests/rankings/{ranking.result_key}.json.json"])
    # ... and nothing of it is on the web node yet
    assert not (node_a / "results").exists() or not any((node_a / "results").rglob("*.npy"))

    viewer = client_for(people, "viewer")
    analysis = viewer.get(run_page_url(run, "analysis/"))
    assert analysis.status_code == 200
    top = json.loads(ranking_b.read_text())
    best = top["neurons"][top["order"][0]]  # the worker's best neuron, as the web node's page shows it
    assert best in analysis.content.decode()
    download = viewer.get(run_page_url(run, f"downloads/{ranking.pk}/ranking.json"))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == ranking_b.read_bytes()
    activations = viewer.get(run_page_url(run, f"downloads/{extract.pk}/activations.jsonl"))
    assert activations.status_code == 200 and len(b"".join(activations.streaming_content).splitlines()) > 0

    # the web node's copies came through the bucket (its markers are written by a fetch), byte for byte
    store_a = node_a / "results" / "stores" / extract.result_key
    assert files_under(store_a) == files_under(store_b)
    assert (node_a / "results" / "rankings" / f"{ranking.result_key}.json").read_bytes() == ranking_b.read_bytes()
    fetched = {relative for _, _, relative in object_store.cached()}
    assert fetched == {f"stores/{extract.result_key}", f"rankings/{ranking.result_key}.json"}
    assert Result.objects.get(key=extract.result_key).bytes == sum(len(b) for b in files_under(store_b).values())


def test_an_upload_missing_from_the_bucket_fails_the_worker_nodes_step_with_its_message(
        people, attached_in_s3, s3_node, celery):
    server, bucket = s3_node["server"], s3_node["bucket"]
    model = attached_in_s3["model"]
    server.client().delete_object(Bucket=bucket, Key=model.storage_name("model.safetensors"))
    worker = celery("worker", "-Q", "gpu,cpu", "--concurrency", "1", name="node-b", **s3_node["worker_env"])
    run = services.create_run(people["owner"], people["project"], request_for(attached_in_s3))
    wait_for(lambda: run_state(run) in (RunState.SUCCEEDED, RunState.FAILED), 60, "the run to finish", [worker])
    extract = run.steps.get(kind=StepKind.EXTRACT)
    assert extract.state == StepState.FAILED
    assert extract.error.startswith(f"The file model.safetensors of the upload “{model.name}” is missing from "
                                    f"storage ({model.storage_name('model.safetensors')})")
    page = client_for(people, "owner").get(run_page_url(run))
    assert page.status_code == 200 and "is missing from storage" in page.content.decode()
