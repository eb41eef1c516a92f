"""``scripts/serve`` itself, on the embedded defaults and a fresh data folder: it serves pages, static files
(whitenoise, DEBUG on), the request guard and websockets through uvicorn, starts real Celery workers on the
server-less broker, and stops all of them on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as websocket_connect

from analysis.examples.catalogue import EXAMPLES
from tests.support.newcomer import REPO_ROOT, newcomer_env
from tests.support.ports import free_port

pytestmark = pytest.mark.slow


def get(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


REALTIME_ROUND_TRIP = """
import django; django.setup()
from analysis.runs import realtime
try:
    realtime.ask(realtime.ACTIVATIONS_TASK, {"model": 10**9, "sha256": "0" * 64, "words": ["a"],
                 "neuron_set": "hidden", "pool": None, "top_k": 1, "aggregation": "last"})
except realtime.RealtimeRequestError as error:
    print(error.message)
"""


@contextlib.contextmanager
def serving(tmp_path, **more_env: str):
    """``scripts/serve`` running on a free port; yields its URL, log and data folder, then stops it as a
    service manager would (SIGTERM) and checks that the server and every worker ended."""
    port = free_port()
    data_dir = tmp_path / "var"
    env = newcomer_env(NEUROX_DATA_DIR=str(data_dir), NEUROX_PYTHON=sys.executable,
                       NEUROX_ADDR=f"127.0.0.1:{port}", NEUROX_REAP_EVERY_SECONDS="1", **more_env)
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(REPO_ROOT / "scripts" / "serve")], cwd=REPO_ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while b"Uvicorn running" not in log.read_bytes():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        children = psutil.Process(process.pid).children(recursive=True)
        yield url, log, data_dir
    finally:
        process.terminate()
        process.wait(timeout=60)
        assert "Finished server process" in log.read_text(), log.read_text()  # a graceful shutdown
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"still running after scripts/serve stopped: {[p.cmdline() for p in alive]}"


@pytest.fixture
def served(tmp_path):
    with serving(tmp_path, NEUROX_EXAMPLES="0") as service:
        yield service


def test_serve_runs_uvicorn_with_pages_static_files_the_guard_and_websockets(served):
    url, _, _ = served
    status, page = get(url + "/accounts/login/")
    assert status == 200 and b"<form" in page
    status, css = get(url + "/static/css/site.css")
    assert status == 200 and css

    status, answer = get(url + "/api/v1/uploads/models/", data=bytes(2 * 1024 * 1024))
    assert status == 401 and b'"not_authenticated"' in answer

    with pytest.raises(InvalidStatus) as refused:
        websocket_connect(url.replace("http", "ws") + "/ws/nothing/", origin="http://evil.example", open_timeout=30)
    assert refused.value.response.status_code == 403  # Channels' origin check, over the websocket protocol


def test_serve_starts_real_workers_that_take_tasks_from_the_embedded_broker(served):
    """Beat (in the cpu worker) sends the reaper every second through the filesystem broker; the cpu worker runs
    it; both workers answer a remote-control ping, which the embedded broker must carry too."""
    _, log, data_dir = served
    cpu_log = data_dir / "logs" / "worker-cpu.log"
    deadline = time.monotonic() + 90
    while not (cpu_log.exists() and "analysis.tasks.reap" in (text := cpu_log.read_text())
               and "succeeded" in text):
        assert time.monotonic() < deadline, (cpu_log.read_text() if cpu_log.exists() else "") + log.read_text()
        time.sleep(0.5)

    env = newcomer_env(NEUROX_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="neurox_site.settings")
    ping = subprocess.run([sys.executable, "-m", "celery", "-A", "neurox_site", "inspect", "ping", "--timeout", "10",
                           "-d", "gpu@embedded,cpu@embedded,realtime@embedded"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "gpu@embedded: OK" in ping.stdout and "cpu@embedded: OK" in ping.stdout, ping.stdout
    assert "realtime@embedded: OK" in ping.stdout, ping.stdout

    # a realtime answer comes back through the file:// result backend (a model that is gone: the worker's 400)
    ask = subprocess.run([sys.executable, "-c", REALTIME_ROUND_TRIP], cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert ask.returncode == 0 and "This model was deleted a moment ago" in ask.stdout, ask.stdout + ask.stderr

    status, health = get(served[0] + "/health/workers/?format=json")
    assert status == 200, health  # every queue (gpu, cpu) has a live worker


EXAMPLE_RUNS = """
import django, json; django.setup()
from analysis.models import Run
print(json.dumps([[r.project.name, r.state, r.error] for r in Run.objects.filter(project__is_example=True)]))
"""


def test_serve_makes_the_example_projects_and_its_workers_compute_them(tmp_path):
    """The first start makes the example projects (small versions here) and the embedded workers compute their
    runs while the site serves; a second start on the same data reuses them and queues nothing."""
    def example_runs(env) -> list:
        answer = subprocess.run([sys.executable, "-c", EXAMPLE_RUNS], cwd=REPO_ROOT, env=env, capture_output=True,
                                text=True, timeout=60)
        assert answer.returncode == 0, answer.stderr
        return json.loads(answer.stdout)

    env = newcomer_env(NEUROX_DATA_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="neurox_site.settings")
    with serving(tmp_path, NEUROX_EXAMPLES="small") as (url, log, data_dir):
        assert "minilm-ud: run created" in log.read_text() and "translation: run created" in log.read_text()
        deadline = time.monotonic() + 240
        runs = example_runs(env)
        while not all(state in ("succeeded", "failed") for _, state, _ in runs):
            assert time.monotonic() < deadline, (runs, (data_dir / "logs" / "worker-gpu.log").read_text()[-3000:])
            time.sleep(1)
            runs = example_runs(env)
        assert len(runs) == len(EXAMPLES) and all(state == "succeeded" for _, state, _ in runs), runs
    (tmp_path / "serve.log").rename(tmp_path / "first-serve.log")
    with serving(tmp_path, NEUROX_EXAMPLES="small") as (url, log, data_dir):
        assert log.read_text().count("run reused (succeeded)") == len(EXAMPLES), log.read_text()
        assert len(example_runs(env)) == len(EXAMPLES)
