"""``scripts/serve`` itself, on the embedded defaults and a fresh data folder: it serves pages, static files
(whitenoise, DEBUG on), the request guard and websockets through uvicorn, and stops on SIGTERM."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as websocket_connect

from tests.e2e.test_newcomer_scripts import REPO_ROOT, newcomer_env

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def served(tmp_path):
    """``scripts/serve`` running on a free port; yields its URL, then stops it as Ctrl-C would."""
    port = free_port()
    env = newcomer_env(NEUROX_DATA_DIR=str(tmp_path / "var"), NEUROX_PYTHON=sys.executable,
                       NEUROX_ADDR=f"127.0.0.1:{port}")
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(REPO_ROOT / "scripts" / "serve")], cwd=REPO_ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while b"Uvicorn running" not in log.read_bytes():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url, log
    finally:
        process.terminate()  # bash exec'd uvicorn, so this is the server
        process.wait(timeout=30)
        assert "Finished server process" in log.read_text(), log.read_text()  # a graceful shutdown


def test_serve_runs_uvicorn_with_pages_static_files_the_guard_and_websockets(served):
    url, _ = served
    status, page = get(url + "/accounts/login/")
    assert status == 200 and b"<form" in page
    status, css = get(url + "/static/css/site.css")
    assert status == 200 and css

    status, answer = get(url + "/api/v1/uploads/models/", data=bytes(2 * 1024 * 1024))
    assert status == 401 and b'"not_authenticated"' in answer

    with pytest.raises(InvalidStatus) as refused:
        websocket_connect(url.replace("http", "ws") + "/ws/nothing/", origin="http://evil.example", open_timeout=30)
    assert refused.value.response.status_code == 403  # Channels' origin check, over the websocket protocol
