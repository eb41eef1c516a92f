"""The pipeline's benchmark table (issue #8, Performance), run on demand — not a timed test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/neurox REDIS_URL=redis://127.0.0.1:6379/4 \\
        .venv/bin/python -m benchmarks.bench_pipeline [--quick]

Self-contained: it drops and re-creates its own database (``neurox_bench`` on DATABASE_URL's server, never the
one named there), uses a fresh temp data folder and the given Redis, starts real processes (uvicorn serving
``neurox_site.asgi``, a gpu-queue and a cpu-queue Celery worker), creates users, tokens and projects through the
ORM and the services, uploads the real MiniLM and UD English EWT dev (UPOS), and measures, in one run:

1. a whole run (hidden states; lca, anova, probeless each with confidence; statistics; probe ablation) POSTed to
   the API and worked by the real workers, against the same engine calls back to back in this process (the mean
   of one run before, after a warm-up extraction so that both find a warm page cache, and one after);
2. the same request in a second user's project over the same model and corpus: every step reused;
3. log line → websocket client through the real uvicorn and the Redis channel layer (lines written by this
   process through ``services.write_log``, as a worker writes them);
4. cancel during extraction and during probe training: time until the worker claims the run queued behind.

``--quick``: 300 sentences, layers 0, 3 and 6, fewer resamples and a short ablation curve (about 2 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics as pystats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

UD_DEV = ROOT.parent / "shared" / "data" / "ud-ewt" / "en_ewt-ud-dev.conllu"
DATABASE_NAME = "neurox_bench"


# ------------------------------------------------------------------------------------------------ setup


def minilm_dir() -> Path:
    return Path(subprocess.run([str(ROOT / "scripts" / "minilm-path")], capture_output=True, text=True,
                               check=True).stdout.strip())


def production_services(database_name: str) -> dict[str, str]:
    """DATABASE_URL (PostgreSQL, pointed at the benchmark's own database) and REDIS_URL, or exit saying why."""
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith("postgres") or not redis_url:
        sys.exit("Set DATABASE_URL (PostgreSQL) and REDIS_URL: this benchmark measures the production setup.")
    parts = urlsplit(database_url)
    return {"DATABASE_URL": urlunsplit(parts._replace(path=f"/{database_name}")), "REDIS_URL": redis_url}


def environment(workdir: Path) -> dict[str, str]:
    return {**production_services(DATABASE_NAME),
            "NEUROX_DATA_DIR": str(workdir / "data"), "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "neurox_site.settings",
            "NEUROX_API_USER_RATE": "1000000/hour", "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"}


def recreate_database(env: dict[str, str]) -> None:
    import psycopg

    parts = urlsplit(env["DATABASE_URL"])
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """uvicorn and one Celery worker per queue, each in its own process group; ``stop()`` ends them all."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.children: list[subprocess.Popen] = []
        self.logs = workdir / "logs"
        self.logs.mkdir()
        self.env = {**os.environ, **env}
        self.port = free_port()
        python = sys.executable
        self._start("uvicorn", [python, "-m", "uvicorn", "neurox_site.asgi:application", "--host", "127.0.0.1",
                                "--port", str(self.port), "--lifespan", "off", "--log-level", "warning"])
        for queue in ("gpu", "cpu"):
            self._start(f"worker-{queue}", [python, "-m", "celery", "-A", "neurox_site", "worker", "-Q", queue,
                                            "--concurrency", "1", "-n", f"{queue}@bench", "--loglevel", "INFO"])
        self.url = f"http://127.0.0.1:{self.port}"

    def _start(self, name: str, command: list[str]) -> None:
        with (self.logs / f"{name}.log").open("wb") as log:
            self.children.append(subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True))

    def wait_ready(self, timeout: float = 120.0) -> None:
        import requests

        deadline = time.monotonic() + timeout
        pending = {"worker-gpu", "worker-cpu", "uvicorn"}
        while pending and time.monotonic() < deadline:
            for child in self.children:
                if child.poll() is not None:
                    raise RuntimeError(f"a child exited early; see {self.logs}")
            for name in [n for n in pending if n.startswith("worker")]:
                if " ready." in (self.logs / f"{name}.log").read_text(errors="replace"):
                    pending.discard(name)
            if "uvicorn" in pending:
                try:
                    requests.get(f"{self.url}/api/v1/", timeout=2)
                    pending.discard("uvicorn")
                except requests.RequestException:
                    pass
            time.sleep(0.2)
        if pending:
            raise RuntimeError(f"{', '.join(sorted(pending))} not ready within {timeout:.0f} s; see {self.logs}")

    def stop(self) -> None:
        import signal

        for child in self.children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def first_sentences(source: Path, n: int | None, target: Path) -> Path:
    blocks = [b for b in source.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    target.write_text("\n\n".join(blocks[:n] if n else blocks) + "\n\n", encoding="utf-8")
    return target


def person(username: str, project_name: str, model_dir: Path, corpora: dict[str, Path]):
    """A user with a token and a project using their own upload of the model and of each corpus."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.services import create_token
    from projects.services.attachments import attach_upload
    from projects.services.library import create_corpus_upload, create_model_upload
    from projects.services.projects import create_project

    user = get_user_model().objects.create_user(username=username, email=f"{username}@bench.example",
                                                password="bench-" + username)
    _, secret = create_token(user, "bench")
    project = create_project(user, name=project_name)
    model = create_model_upload(user, files=[SimpleUploadedFile(p.name, p.read_bytes())
                                             for p in sorted(model_dir.iterdir()) if p.is_file()], name="MiniLM")
    attach_upload(user, project, model)
    uploaded = {}
    for name, path in corpora.items():
        uploaded[name] = create_corpus_upload(user, file=SimpleUploadedFile(path.name, path.read_bytes()),
                                              label_column="upos", name=name)
        attach_upload(user, project, uploaded[name])
    return {"user": user, "token": secret, "project": project, "model": model, "corpora": uploaded}


# ------------------------------------------------------------------------------------------------ the API


class Client:
    def __init__(self, url: str, token: str):
        import requests

        self.url, self.session = url, requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def post_run(self, project_id: int, request: dict) -> dict:
        answer = self.session.post(f"{self.url}/api/v1/projects/{project_id}/runs/", json=request, timeout=60)
        if answer.status_code != 201:
            raise RuntimeError(f"POST run: {answer.status_code} {answer.text[:500]}")
        return answer.json()

    def run(self, run_id: int) -> dict:
        return self.session.get(f"{self.url}/api/v1/runs/{run_id}/", timeout=30).json()

    def cancel(self, run_id: int) -> None:
        answer = self.session.post(f"{self.url}/api/v1/runs/{run_id}/cancel/", timeout=30)
        if answer.status_code != 200:
            raise RuntimeError(f"cancel: {answer.status_code} {answer.text[:300]}")

    def wait(self, run_id: int, until, every: float = 0.1, timeout: float = 7200.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if until(run):
                return run
            if run["state"] in ("failed", "cancelled") and not until(run):
                raise RuntimeError(f"run {run_id} ended {run['state']}: {run.get('error')}")
            time.sleep(every)
        raise RuntimeError(f"run {run_id} did not get there within {timeout:.0f} s")


def finished(run: dict) -> bool:
    return run["state"] == "succeeded"


def step_seconds(step: dict) -> float:
    from datetime import datetime

    if not step["started_at"] or not step["finished_at"]:
        return 0.0
    return (datetime.fromisoformat(step["finished_at"]) - datetime.fromisoformat(step["started_at"])).total_seconds()


def step_of(run: dict, kind: str) -> dict:
    return next(s for s in run["steps"] if s["kind"] == kind)


# ------------------------------------------------------------------------------------------------ 1. the whole run


def analysis_request(model_id: int, corpus_id: int, layers, boot: dict, ablation: dict) -> dict:
    return {"models": [model_id], "corpus": corpus_id, "neuron_sets": ["hidden"], "layers": layers,
            "rankings": [{"method": m, "bootstrap": b} for m, b in boot.items()], "statistics": True,
            "probe_ablation": ablation, "seed": 0}


def in_process(corpus_row, model_row, results: Path, request: dict) -> dict[str, float]:
    """The engine calls the step types (``analysis.steps``) make for ``request``, back to back, timed one by one."""
    from django.conf import settings

    from analysis.engine.extract import ExtractionParams, extract_activations
    from analysis.engine.formats import read_corpus
    from analysis.engine.lca import linguistic_correlation
    from analysis.engine.loading import load_model
    from analysis.engine.methods import compute_ranking
    from analysis.engine.probe_ablation import probe_ablation
    from analysis.engine.splits import split_by_sentence
    from analysis.engine.stats import compute_neuron_stats
    from projects.services.storage import local_folder

    times = {}
    start = time.perf_counter()
    folder = local_folder(corpus_row)
    corpus = read_corpus(corpus_row.format, folder / corpus_row.metadata["word_file"],
                         filename=corpus_row.metadata["word_file"], label_column=corpus_row.label_column or None,
                         note_sentences_over=None)
    params = ExtractionParams(neuron_sets=tuple(request["neuron_sets"]), aggregation="last", dtype="float32",
                              label_column=corpus_row.label_column or "")
    loaded = load_model(local_folder(model_row), sha256=model_row.sha256)
    store = extract_activations(loaded, corpus, results / "stores", params,
                                chunk_words=settings.NEUROX_EXTRACT_CHUNK_WORDS)
    del loaded
    times["extract"] = time.perf_counter() - start
    sets, layers, seed = request["neuron_sets"], request["layers"], request["seed"]
    start = time.perf_counter()
    compute_neuron_stats(store.features(sets, layers), store.words, store.sentence_offsets, store.labels,
                         store.label_names).save(results / "stats")
    times["statistics"] = time.perf_counter() - start
    for ranking in request["rankings"]:
        start = time.perf_counter()
        rank = compute_ranking(store, ranking["method"], neuron_sets=sets, layers=layers, seed=seed,
                               bootstrap=ranking["bootstrap"])
        (results / f"{ranking['method']}.json").write_text(json.dumps(rank.to_dict()))
        times[ranking["method"]] = time.perf_counter() - start
    ablation = request["probe_ablation"]
    start = time.perf_counter()
    features = store.features(sets, layers)
    split = split_by_sentence(store.sentence_offsets, seed=seed)
    rank, probe = linguistic_correlation(features, store.labels, label_names=store.label_names, train=split.train,
                                         dev=split.dev, test=split.test, seed=seed, return_probe=True)
    curve = probe_ablation(probe, features, store.labels, rank.order, train=split.train, test=split.test,
                           percents=ablation["percents"], modes=ablation["modes"],
                           random_seeds=ablation["random_seeds"], seed=seed)
    (results / "curve.json").write_text(json.dumps(curve.to_dict()))
    times["probe ablation"] = time.perf_counter() - start
    return times


def warm_up(model_row, corpus_row, workdir: Path) -> None:
    """20 sentences through the model and an lca probe: libraries loaded, first forward pass and first probe done,
    weights and corpus in the page cache (the workers get the same from a small run through the API)."""
    from analysis.engine.extract import ExtractionParams, extract_activations
    from analysis.engine.formats import Corpus, read_corpus
    from analysis.engine.loading import load_model
    from analysis.engine.methods import compute_ranking
    from projects.services.storage import local_folder

    folder = local_folder(corpus_row)
    corpus = read_corpus(corpus_row.format, folder / corpus_row.metadata["word_file"],
                         filename=corpus_row.metadata["word_file"], label_column="upos", note_sentences_over=None)
    small = Corpus(sentences=corpus.sentences[:20], labels=corpus.labels[:20], label_column="upos")
    store = extract_activations(load_model(local_folder(model_row)), small, workdir / "warm-up",
                                ExtractionParams(label_column="upos"))
    compute_ranking(store, "lca")  # as the workers' warm-up run does


# ------------------------------------------------------------------------------------------------ 3. websocket


def websocket_latency(url: str, run_id: int, cookie: str, lines: int = 150, gap: float = 0.03) -> list[float]:
    """Seconds from ``write_log`` being called (in a thread of this process, not uvicorn's) to the line's arrival
    at a websocket client of ``ws/runs/<id>/``."""
    import websockets
    from django.db import connection

    from analysis.runs import services

    written: dict[int, float] = {}
    arrived: dict[int, float] = {}
    marker = re.compile(r"bench-marker-(\d+)")

    def writer():
        try:
            for i in range(lines):
                written[i] = time.perf_counter()
                services.write_log(run_id, [f"bench-marker-{i}"])
                time.sleep(gap)
        finally:
            connection.close()

    async def client():
        ws_url = url.replace("http://", "ws://") + f"/ws/runs/{run_id}/"
        async with websockets.connect(ws_url, origin=url, additional_headers={"Cookie": cookie}) as ws:
            await ws.recv()  # the snapshot
            thread = threading.Thread(target=writer)
            thread.start()
            deadline = time.monotonic() + lines * gap + 30
            while len(arrived) < lines and time.monotonic() < deadline:
                try:
                    message = await asyncio.wait_for(ws.recv(), timeout=5)
                except asyncio.TimeoutError:
                    continue
                now = time.perf_counter()
                for found in marker.finditer(message):
                    arrived.setdefault(int(found.group(1)), now)
            thread.join()

    asyncio.run(client())
    missing = lines - len(arrived)
    if missing:
        raise RuntimeError(f"{missing} of {lines} marker lines never reached the websocket client")
    return sorted(arrived[i] - written[i] for i in range(lines))


def session_cookie(user) -> str:
    from django.conf import settings
    from django.test import Client as DjangoClient

    client = DjangoClient()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


# ------------------------------------------------------------------------------------------------ 4. cancel


def cancel_to_next_claim(api: Client, project_id: int, busy: dict, behind: dict, kind: str, started) -> dict:
    """Start ``busy``, wait until its ``kind`` step is working (``started``), queue ``behind`` (same queue), POST
    cancel for ``busy``: seconds until ``behind``'s ``kind`` step is running on the freed worker."""
    first = api.post_run(project_id, busy)["id"]
    api.wait(first, lambda r: started(step_of(r, kind)), every=0.1, timeout=1800)
    second = api.post_run(project_id, behind)["id"]
    time.sleep(0.5)  # its message is in the queue, behind the busy step
    start = time.perf_counter()
    api.cancel(first)
    api.wait(second, lambda r: step_of(r, kind)["state"] == "running", every=0.05, timeout=600)
    seconds = time.perf_counter() - start
    api.cancel(second)
    api.wait(second, lambda r: step_of(r, kind)["state"] in ("cancelled", "succeeded"), timeout=600)
    return {"seconds": seconds, "first": first, "second": second}


# ------------------------------------------------------------------------------------------------ the table


def line(rows: list, what: str, measured: str, target: str, ok: bool | None, note: str = "") -> None:
    rows.append((what, measured, target, "n/a" if ok is None else ("PASS" if ok else "FAIL"), note))


def print_table(rows: list) -> None:
    widths = [max(len(str(r[i])) for r in rows + [("what", "measured", "target", "", "note")]) for i in range(5)]
    header = ("what", "measured", "target", "", "note")
    print()
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def main(quick: bool) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="neurox-bench-pipeline-"))
    env = environment(workdir)
    recreate_database(env)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    sentences, layers = (300, [0, 3, 6]) if quick else (None, None)
    boot = {"lca": 2, "anova": 5, "probeless": 5} if quick else {"lca": 5, "anova": 20, "probeless": 20}
    ablation = ({"percents": [10, 50, 100], "random_seeds": 1, "modes": ["zero_out", "retrain"]} if quick else
                {"percents": [5, 10, 15, 20, 30, 50, 75, 100], "random_seeds": 5, "modes": ["zero_out", "retrain"]})
    corpus_file = first_sentences(UD_DEV, sentences, workdir / "ud-dev.conllu")
    warm_file = first_sentences(UD_DEV, 20, workdir / "ud-dev-warm-up.conllu")
    full_file = first_sentences(UD_DEV, None, workdir / "ud-dev-full.conllu")
    model_dir = minilm_dir()
    processes = Processes(workdir, env)
    rows: list = []
    try:
        alice = person("alice", "MiniLM x UD", model_dir, {"ud": corpus_file, "ud-full": full_file,
                                                                 "warm-up": warm_file})
        bob = person("bob", "MiniLM x UD again", model_dir, {"ud": corpus_file})
        processes.wait_ready()
        request = analysis_request(alice["model"].pk, alice["corpora"]["ud"].pk, layers, boot, ablation)
        print(f"corpus: {'300 sentences' if quick else 'all of UD EWT dev'}; layers {layers or 'all'}; "
              f"resamples {boot}; ablation {ablation}", flush=True)

        # 1. in-process baseline (after a warm-up), then the same through the API and the workers (warmed up
        # alike by a small run: a long-lived worker has loaded its libraries and run its first forward pass)
        warm_up(alice["model"], alice["corpora"]["ud"], workdir)
        api = Client(processes.url, alice["token"])
        api.wait(api.post_run(alice["project"].pk, {
            "models": [alice["model"].pk], "corpus": alice["corpora"]["warm-up"].pk,
            "rankings": [{"method": "lca", "bootstrap": 0}], "statistics": True})["id"], finished, every=0.2)
        start = time.perf_counter()
        parts = in_process(alice["corpora"]["ud"], alice["model"], workdir / "baseline", request)
        baseline = time.perf_counter() - start
        print(f"in process: {baseline:.1f} s  " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()), flush=True)
        start = time.perf_counter()
        run_id = api.post_run(alice["project"].pk, request)["id"]
        run = api.wait(run_id, finished, every=0.2)
        pipeline = time.perf_counter() - start
        print(f"pipeline: {pipeline:.1f} s  " + ", ".join(
            f"{s['title'].split(':')[0]} {step_seconds(s):.1f}" for s in run["steps"]), flush=True)
        # the machine is shared: the baseline again after the pipeline, so that drift in load hits both sides
        start = time.perf_counter()
        parts = in_process(alice["corpora"]["ud"], alice["model"], workdir / "baseline-after", request)
        after = time.perf_counter() - start
        print(f"in process again: {after:.1f} s  " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()),
              flush=True)
        before, baseline = baseline, (baseline + after) / 2
        ratio = pipeline / baseline
        scope = ("300 sentences, layers 0,3,6; resamples lca 2, anova 5, probeless 5; ablation 3 points x 1 seed"
                 if quick else "all UD dev, every layer; default resamples (lca 5, anova/probeless 20); "
                               "ablation 8 points x 5 seeds")
        line(rows, "whole run: API + workers / in-process", f"{ratio:.2f} ({pipeline:.1f} s / {baseline:.1f} s)",
             "<= 1.3", ratio <= 1.3, f"in-process {before:.1f} s before, {after:.1f} s after; {scope}")

        # 2. the same request in another user's project: every result exists
        bob_api = Client(processes.url, bob["token"])
        again = analysis_request(bob["model"].pk, bob["corpora"]["ud"].pk, layers, boot, ablation)
        start = time.perf_counter()
        second = bob_api.post_run(bob["project"].pk, again)["id"]
        run = bob_api.wait(second, finished, every=0.02)
        seconds = time.perf_counter() - start
        reused = all(s["reused"] for s in run["steps"])
        line(rows, "second project, same model + corpus", f"{seconds:.2f} s", "< 2 s, all reused",
             seconds < 2 and reused, f"{sum(s['reused'] for s in run['steps'])}/{len(run['steps'])} steps reused")

        # 3. log line -> websocket client
        delays = websocket_latency(processes.url, run_id, session_cookie(alice["user"]))
        p50, p95 = pystats.median(delays), delays[int(0.95 * (len(delays) - 1))]
        line(rows, "log line -> websocket (p50 / p95)", f"{p50 * 1000:.0f} / {p95 * 1000:.0f} ms", "p95 < 250 ms",
             p95 < 0.25, f"{len(delays)} lines via write_log in another process, Redis layer, uvicorn")

        # 4. cancel during extraction and during probe training (full corpus: long enough to catch)
        full = alice["corpora"]["ud-full"].pk
        extraction = cancel_to_next_claim(
            api, alice["project"].pk,
            {"models": [alice["model"].pk], "corpus": full, "neuron_sets": ["mlp"], "statistics": True},
            {"models": [alice["model"].pk], "corpus": full, "neuron_sets": ["hidden"], "aggregation": "mean",
             "statistics": True},
            "extract", lambda s: s["state"] == "running" and s["done"] > 0)
        line(rows, "cancel during extraction -> next claim", f"{extraction['seconds']:.2f} s", "< 5 s",
             extraction["seconds"] < 5, "a run queued behind on the gpu queue starts its extraction")
        api.wait(api.post_run(alice["project"].pk, {"models": [alice["model"].pk], "corpus": full,
                                                    "neuron_sets": ["hidden"], "rankings": [],
                                                    "statistics": True})["id"], finished, every=0.5)
        training = cancel_to_next_claim(
            api, alice["project"].pk,
            {"models": [alice["model"].pk], "corpus": full, "rankings": [{"method": "lca", "bootstrap": 0}],
             "statistics": False, "seed": 11},
            {"models": [alice["model"].pk], "corpus": full, "rankings": [{"method": "lca", "bootstrap": 0}],
             "statistics": False, "seed": 12},
            "ranking", lambda s: s["state"] == "running" and s["done"] > 0)
        line(rows, "cancel during lca training -> next claim", f"{training['seconds']:.2f} s", "< 5 s",
             training["seconds"] < 5, "a run queued behind on the cpu queue starts its lca step")
    finally:
        processes.stop()
        print_table(rows)
        print(f"\nlogs and data: {workdir} (removed unless --keep)")
        if not KEEP:
            shutil.rmtree(workdir, ignore_errors=True)


KEEP = False

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 sentences, 3 layers, fewer resamples (~2 min)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, data) afterwards")
    arguments = parser.parse_args()
    KEEP = arguments.keep
    main(arguments.quick)
