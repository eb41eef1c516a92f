"""The workspace's load benchmark (issue #10, Performance), run on demand — not a timed test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/neurox REDIS_URL=redis://127.0.0.1:6379/4 \\
        .venv/bin/python -m benchmarks.bench_workspace [--users 20] [--seconds 180] [--server-workers 2] [--rebuild]

1. The run: the real all-MiniLM-L6-v2 over the whole UD English EWT dev corpus (2,001 sentences, 25,147 words,
   UPOS), hidden states of every layer, probeless and ANOVA rankings, neuron statistics and a short probe-ablation
   curve, computed by the pipeline in this process (the engine's calls, the Run / Step / Result rows on
   PostgreSQL), in its own database (``neurox_bench_workspace`` on DATABASE_URL's server) and data folder
   (``--cache``, default ``var/bench/workspace/``). Both are kept: the next run of the benchmark reuses them
   (``--rebuild`` starts again).
2. The URLs: every GET of ``analysis/urls.py`` and ``analysis/api_urls.py`` that the permission matrix's table
   (tests/workspace_tests/test_permission_matrix.py, the one list of workspace URLs and their kwargs) says a
   member may read, plus every ``hx-get`` partial URL found in those pages' HTML — so views merged later are
   measured without touching this file. Downloads of whole result files are left out (a download reads its file).
3. Reads per URL: a fresh uvicorn server (the real ASGI app, ``tests.e2e.server``) answers each URL once, cold;
   the bytes the server process read with read() (``/proc/<pid>/io``) and the bytes of the activation store's
   files that became resident in its memory maps (``/proc/<pid>/smaps``) are compared with the store's size: no
   request may read it whole.
4. Load: ``--users`` concurrent signed-in members (locust, headless, in its own process; they arrive over four
   seconds, not in the same instant) with ``--think`` seconds between their requests, over all the URLs for
   ``--seconds``; a table of p50 / p95 per URL (as the client measures it, on loopback) against the target
   p95 < 150 ms, and the server's memory after it. The server under load is the production command with
   ``--server-workers`` processes (its ``--workers``; default 2, one per core here): a Django view runs in one
   thread per process under ASGI, so one process answers one request at a time.

Exit status 1 when a URL misses the target, fails, or reads a whole store. The machine is shared (two cores,
other engineers' test runs and the load tool itself): say so next to the numbers.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATABASE_NAME = "neurox_bench_workspace"
PROJECT_NAME = "bench: MiniLM x UD EWT dev (workspace)"
TARGET_P95_MS = 150
HX_GET = re.compile(r'hx-get="([^"]+)"')


# ------------------------------------------------------------------------------------------------ setup


def environment(cache: Path) -> dict[str, str]:
    from benchmarks.bench_pipeline import production_services

    # tests.settings: the real settings without HTTPS redirects and secure cookies (loopback, plain HTTP).
    return {**production_services(DATABASE_NAME),
            "NEUROX_DATA_DIR": str(cache / "data"), "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"}


def database_exists(env: dict[str, str]) -> bool:
    import psycopg

    parts = urlsplit(env["DATABASE_URL"])
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone() \
            is not None


def recreate_database(env: dict[str, str]) -> None:
    import psycopg

    parts = urlsplit(env["DATABASE_URL"])
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False


# ------------------------------------------------------------------------------------------------ 1. the run


def cached_run():
    """The succeeded benchmark run, if the database and data folder hold one with every result ready."""
    from analysis.models import Result, ResultState, Run, RunState

    run = Run.objects.filter(project__name=PROJECT_NAME, state=RunState.SUCCEEDED).order_by("-pk").first()
    if run is None:
        return None
    keys = list(run.steps.values_list("result_key", flat=True))
    if Result.objects.filter(key__in=keys, state=ResultState.READY).count() != len(set(keys)):
        return None
    return run


def build_run(users: int):
    """Owner, ``users`` viewers, the project with MiniLM and UD EWT dev, and the run, computed in-process."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from analysis.runs import services
    from neurox_site.celery import app
    from projects.models import Role
    from projects.services.attachments import attach_upload
    from projects.services.library import create_corpus_upload, create_model_upload
    from projects.services.projects import create_project
    from tests.assets import UD_DEV, minilm_model_dir

    User = get_user_model()
    owner = User.objects.create_user(username="bench-owner", email="bench-owner@bench.example",
                                     password="bench-owner-password")
    project = create_project(owner, name=PROJECT_NAME)
    for i in range(users):
        member = User.objects.create_user(username=f"bench-viewer-{i}", email=f"bench-viewer-{i}@bench.example",
                                          password="bench-viewer-password")
        project.memberships.create(user=member, role=Role.VIEWER)
    model_dir = minilm_model_dir()
    model = create_model_upload(owner, name="all-MiniLM-L6-v2", files=[
        SimpleUploadedFile(p.name, p.read_bytes()) for p in sorted(model_dir.iterdir()) if p.is_file()])
    corpus = create_corpus_upload(owner, file=SimpleUploadedFile(UD_DEV.name, UD_DEV.read_bytes()),
                                  label_column="upos", name="UD EWT dev")
    attach_upload(owner, project, model)
    attach_upload(owner, project, corpus)
    settings.CELERY_TASK_ALWAYS_EAGER = True  # this process is the worker: the same task code, no broker
    app.conf.task_always_eager = True
    started = time.perf_counter()
    run = services.create_run(owner, project, {
        "models": [model.pk], "corpus": corpus.pk, "neuron_sets": ["hidden"],
        "rankings": [{"method": "probeless", "bootstrap": 0}, {"method": "anova", "bootstrap": 0}],
        "statistics": True, "probe_ablation": {"percents": [10, 100], "random_seeds": 1, "modes": ["zero_out"]},
        "seed": 0})
    run.refresh_from_db()
    if run.state != "succeeded":
        sys.exit(f"the benchmark run ended {run.state}: {run.error}")
    print(f"built the run in {time.perf_counter() - started:.0f} s")
    return run


def store_bytes(run) -> tuple[str, int]:
    from analysis.steps.storage import stores_root
    from analysis.models import StepKind

    step = run.steps.get(kind=StepKind.EXTRACT)
    folder = stores_root() / step.result_key
    return folder, sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------------ 2. the URLs


def world_of(run):
    """The permission matrix's ``World`` for ``run`` (its kwargs fillers read it)."""
    from analysis import workspace
    from analysis.models import StepKind
    from analysis.workspace.results import results_of
    from tests.support.runs import succeeded_steps
    from tests.workspace_tests.test_permission_matrix import World

    ranking = workspace.ranking_of(succeeded_steps(run, StepKind.RANKING)[0])
    steps = {}
    for step in workspace.RunView(run).steps:
        steps.setdefault(step.kind, step)
    first = next(r for r in results_of(run, with_data=False) if r.files)
    model = run.project.model_uploads.first()
    return World(people={"owner": run.created_by}, attached={"model": model}, run=run,
                 neuron=ranking.top(1)[0].label, steps=steps, result_file=(first.step, sorted(first.files)[0]))


DOWNLOADS = {"api:api-run-result-file", "api:api-run-download", "page:run-download"}


def member_urls(run, session, base: str) -> dict[str, str]:
    """name -> URL of every GET a member may read (per the permission matrix), downloads left out. Patterns with
    ids the views make up (a curve's, a recipe's) take a URL that the pages link to (``linked_urls``)."""
    from tests.workspace_tests.test_permission_matrix import PATTERNS, TABLE, linked_urls, needs_a_link, url_of

    world = world_of(run)
    readable = [key for key in sorted(set(TABLE) & set(PATTERNS)) if key not in DOWNLOADS
                and TABLE[key].methods.get("GET") and TABLE[key].methods["GET"].rule in ("READ", "LIST")]

    def html_of(url: str) -> str:
        answer = session.get(base + url, timeout=120)
        return answer.text if answer.ok and "html" in answer.headers.get("Content-Type", "") else ""

    world.links = linked_urls(html_of, [url_of(key, world) for key in readable if not needs_a_link(key)])
    found = {}
    for key in readable:
        try:
            found[key] = url_of(key, world)
        except AssertionError as why:  # an id no page links to: say so, measure the rest
            print(f"left out {key}: {why}")
    return found


def partial_urls(session, base: str, pages: dict[str, str], run) -> dict[str, str]:
    """The ``hx-get`` URLs of the run found in the pages' HTML (the partials the pages load)."""
    prefix = f"/projects/{run.project_id}/runs/{run.pk}/"
    seen = {urlsplit(url).path for url in pages.values()}  # one URL per partial: not every row's variant
    found = {}
    for name, url in pages.items():
        if not name.startswith("page:"):
            continue
        for target in HX_GET.findall(session.get(base + url, timeout=60).text):
            target = html.unescape(target)
            if target.startswith(prefix) and urlsplit(target).path not in seen:
                seen.add(urlsplit(target).path)
                found[f"partial:{urlsplit(target).path.removeprefix(prefix).strip('/') or '.'}"
                      f"{'?' + urlsplit(target).query if urlsplit(target).query else ''}"] = target
    return found


def session_cookies(run, count: int) -> list[str]:
    """A signed-in session for each of ``count`` viewers of the project."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    cookies = []
    for i in range(count):
        client = Client()
        client.force_login(get_user_model().objects.get(username=f"bench-viewer-{i}"))
        cookies.append(client.cookies["sessionid"].value)
    return cookies


# ------------------------------------------------------------------------------------------------ 3. reads


def read_bytes(pid: int) -> int:
    """Bytes the process has read with read() from any file (rchar)."""
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(io["rchar"])


def store_resident(pid: int, store: Path) -> int:
    """Bytes of the activation store's files resident in the process's memory maps (smaps Rss)."""
    total, in_store = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", head[0]):
            in_store = len(head) >= 6 and head[5].startswith(str(store))
        elif in_store and line.startswith("Rss:"):
            total += int(head[1]) * 1024
    return total


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cold_reads(session, base: str, urls: dict[str, str], pid: int, store: Path) -> dict[str, tuple]:
    """Each URL once, in order, on a fresh server: (status, bytes read() by the server, bytes of the store
    newly mapped into its memory) while answering."""
    found = {}
    for name, url in urls.items():
        read, mapped = read_bytes(pid), store_resident(pid, store)
        status = session.get(base + url, timeout=120).status_code
        found[name] = (status, read_bytes(pid) - read, store_resident(pid, store) - mapped)
    return found


def one_user(session, base: str, urls: dict[str, str], repeats: int = 5) -> dict[str, float]:
    """Median milliseconds of ``repeats`` requests per URL, one at a time (warm server): the cost of a page
    without concurrency, to tell a slow view from a busy machine."""
    found = {}
    for name, url in urls.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            session.get(base + url, timeout=120)
            times.append((time.perf_counter() - started) * 1000)
        found[name] = sorted(times)[len(times) // 2]
    return found


def warm(session, base: str, urls: dict[str, str], processes: int) -> None:
    """Every URL a few times at once, so that each server process has opened what it caches before the load."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2 * processes) as pool:
        list(pool.map(lambda url: session.get(base + url, timeout=120), list(urls.values()) * 2 * processes))


# ------------------------------------------------------------------------------------------------ 4. load

LOCUSTFILE = '''
import itertools, json, os
from locust import HttpUser, between, task

SPEC = json.loads(open(os.environ["BENCH_SPEC"]).read())
COOKIES = itertools.cycle(SPEC["cookies"])
STARTS = itertools.count(0, 7)


class Member(HttpUser):
    wait_time = between(SPEC["think"] * 0.5, SPEC["think"] * 1.5)

    def on_start(self):
        self.client.cookies.set("sessionid", next(COOKIES))
        # each user starts at its own place in the list, as people do: not all 20 on the first URL at once
        urls = list(SPEC["urls"].items())
        start = next(STARTS) % len(urls)
        self.urls = itertools.cycle(urls[start:] + urls[:start])

    @task
    def next_url(self):
        name, url = next(self.urls)
        with self.client.get(url, name=name, catch_response=True, allow_redirects=False) as answer:
            if answer.status_code != 200:
                answer.failure(f"HTTP {answer.status_code}")
'''


def load(base: str, urls: dict[str, str], cookies: list[str], users: int, seconds: int, think: float,
         workdir: Path) -> list[dict]:
    spec = workdir / "spec.json"
    spec.write_text(json.dumps({"urls": urls, "cookies": cookies, "think": think}))
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    locust = Path(sys.executable).with_name("locust")
    command = [str(locust), "-f", str(locustfile), "--headless", "--users", str(users),
               "--spawn-rate", str(max(1, users // 4)),
               "--run-time", f"{seconds}s", "--host", base, "--csv", str(workdir / "load"), "--only-summary",
               "--loglevel", "WARNING"]
    subprocess.run(command, env={**os.environ, "BENCH_SPEC": str(spec)}, check=False,
                   stdout=(workdir / "locust.log").open("wb"), stderr=subprocess.STDOUT)
    import csv

    with (workdir / "load_stats.csv").open() as rows:
        return [row for row in csv.DictReader(rows) if row["Name"] != "Aggregated"]


# ------------------------------------------------------------------------------------------------ main


def server_rss(process) -> int:
    """Resident memory of a server process and its children (uvicorn's workers)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return sum(rss_bytes(int(pid)) for pid in children) + rss_bytes(process.pid)


class UvicornWorkers:
    """The production command (``python -m neurox_site.uvicorn_tcp neurox_site.asgi:application --workers N``)
    on a free loopback port, with the benchmark's settings (``tests.settings``: plain HTTP); ``url``, ``process``,
    ``stop()`` as :class:`~tests.e2e.server.ServerProcess`."""

    def __init__(self, workers: int, workdir: Path, timeout: float = 90.0):
        import socket

        import requests

        workdir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url, log_path = f"http://127.0.0.1:{port}", workdir / "uvicorn.log"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "neurox_site.uvicorn_tcp", "neurox_site.asgi:application", "--host",
                 "127.0.0.1", "--port", str(port), "--workers", str(workers), "--lifespan", "off",
                 "--no-access-log"],
                cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}, stdout=log,
                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/", timeout=5).status_code < 500:
                    time.sleep(3)  # every worker imports Django on its own: give the others a moment
                    return
            except requests.ConnectionError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"uvicorn --workers {workers} did not answer within {timeout:.0f} s:\n"
                           f"{log_path.read_text(errors='replace')[-4000:]}")

    def stop(self) -> None:
        from tests.e2e.server import stop_process

        stop_process(self.process)


def main(users: int, seconds: int, think: float, cache: Path, rebuild: bool, server_workers: int) -> int:
    env = environment(cache)
    fresh = rebuild or not database_exists(env) or not (cache / "data").exists()
    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
        (cache / "data").mkdir(parents=True)
        recreate_database(env)
    setup_django(env)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # a reused database gets the migrations merged since
    run = None if fresh else cached_run()
    if run is None:
        if not fresh:  # a database without a finished run: start again
            from django.db import connections

            connections.close_all()
            shutil.rmtree(cache, ignore_errors=True)
            (cache / "data").mkdir(parents=True)
            recreate_database(env)
            call_command("migrate", verbosity=0)
        run = build_run(users)
    else:
        print(f"reusing run {run.pk} from {cache}")
    store, store_size = store_bytes(run)
    cookies = session_cookies(run, users)

    import requests
    from django.db import connection

    from tests.e2e.server import ServerProcess

    database = str(connection.settings_dict["NAME"])
    workdir = Path(tempfile.mkdtemp(prefix="bench-workspace-"))
    server = ServerProcess(database, workdir)
    try:
        session = requests.Session()
        session.cookies.set("sessionid", cookies[0])
        urls = member_urls(run, session, server.url)
        urls.update(partial_urls(session, server.url, urls, run))
        # The partial discovery warmed the server: start a fresh one for the cold reads.
        server.stop()
        (workdir / "cold").mkdir()
        server = ServerProcess(database, workdir / "cold")
        reads = cold_reads(session, server.url, urls, server.process.pid, store)
        if server_workers > 1:
            server.stop()
            server = UvicornWorkers(server_workers, workdir / "workers")
            warm(session, server.url, urls, server_workers)
        alone = one_user(session, server.url, urls)
        rows = load(server.url, urls, cookies, users, seconds, think, workdir)
        rss = server_rss(server.process)
    finally:
        server.stop()

    failures = report(run, urls, store.name, store_size, reads, alone, rows, rss, users, seconds, think,
                      server_workers)
    print(f"(locust's files: {workdir})")
    return 1 if failures else 0


def report(run, urls, store_key, store_size, reads, alone, rows, rss, users, seconds, think,
           server_workers) -> list[str]:
    by_name = {row["Name"]: row for row in rows}
    failures = []
    print()
    print(f"run {run.pk}: all-MiniLM-L6-v2 × UD EWT dev (25,147 words), hidden states of every layer; "
          f"activation store {store_key[:12]}… = {store_size / 2**20:.1f} MiB")
    load_average = Path("/proc/loadavg").read_text().split()[0]
    print(f"{users} concurrent users (locust, headless), {think:g} s think time, {seconds} s; uvicorn "
          f"({server_workers} process{'es' if server_workers > 1 else ''}) "
          f"on PostgreSQL + Redis, loopback; machine loaded by other engineers ({os.cpu_count()} cores, shared "
          f"with the load tool; load average {load_average} at the end)")
    print()
    header = f"{'URL':<42} {'status':>6} {'read() MiB':>10} {'store MiB':>9} {'1 user ms':>9} {'requests':>8} " \
             f"{'fail':>5} {'p50 ms':>7} {'p95 ms':>7} {'p95<150':>8}"
    print(header)
    print("-" * len(header))
    for name in urls:
        status, read, mapped = reads[name]
        row = by_name.get(name, {})
        count, failed = int(row.get("Request Count", 0)), int(row.get("Failure Count", 0))
        p50, p95 = row.get("50%", "N/A"), row.get("95%", "N/A")
        met = p95 not in ("N/A", "") and float(p95) < TARGET_P95_MS
        print(f"{name:<42} {status:>6} {read / 2**20:>10.1f} {mapped / 2**20:>9.1f} {alone[name]:>9.0f} {count:>8} "
              f"{failed:>5} {p50:>7} {p95:>7} {'yes' if met else 'NO':>8}")
        if status != 200 or failed or not count:
            failures.append(f"{name}: status {status}, {failed} failed of {count}")
        if not met:
            failures.append(f"{name}: p95 {p95} ms")
        if read >= store_size or mapped >= store_size:
            failures.append(f"{name}: read {read / 2**20:.1f} MiB and mapped {mapped / 2**20:.1f} MiB of the store; "
                            f"the store is {store_size / 2**20:.1f} MiB")
    print()
    print(f"server RSS after the load (all its processes): {rss / 2**20:.0f} MiB (the store: "
          f"{store_size / 2**20:.0f} MiB, memory-mapped)")
    print("1 user ms = median of 5 requests one at a time on the warm server under test, before the load; p50 / p95: "
          "under the load, as locust measures them")
    print("read() MiB: bytes the server read() from any file (results, templates, code) while answering the URL's "
          "first request on a fresh server; store MiB: bytes of the activation store's files newly resident in "
          "its memory maps (smaps Rss) then. Neither may reach the store's size.")
    if failures:
        print("\nMISSED:\n  " + "\n  ".join(failures))
    else:
        print(f"\nevery URL: p95 < {TARGET_P95_MS} ms, no failure, no whole-store read")
    return failures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    parser.add_argument("--seconds", type=int, default=180,
                        help="length of the load (default 180: over 100 requests per URL, so p95 is not one request)")
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds between a user's requests (1.0)")
    parser.add_argument("--cache", type=Path, default=ROOT / "var" / "bench" / "workspace",
                        help="where the run's files are kept between runs (default var/bench/workspace/)")
    parser.add_argument("--server-workers", type=int, default=2,
                        help="uvicorn processes under the load (default 2: one per core here)")
    parser.add_argument("--rebuild", action="store_true", help="compute the run again")
    arguments = parser.parse_args()
    sys.exit(main(arguments.users, arguments.seconds, arguments.think, arguments.cache.resolve(),
                  arguments.rebuild, arguments.server_workers))
