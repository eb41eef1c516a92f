"""A real uvicorn server (as in production) for the browser and server tests, in its own process, serving
``neurox_site.asgi`` on the test database.

The parent (the pytest process, after pytest-django created the test database) starts::

    python -m tests.e2e.server --database <test database name> --port-file <path>

The child loads the same settings (``tests.settings``, the same environment: ``DATABASE_URL``, ``REDIS_URL``,
``NEUROX_DATA_DIR``), points the default database at the test database the parent created, and serves on a free
localhost port, which it writes to ``--port-file`` once it listens. Static files come from the finders (as
Channels' live server does), so pages look as they do in development.

Why not ``channels.testing.ChannelsLiveServerTestCase``: it forks the pytest process (torch's thread pools do not
survive a fork) and it names the server's database ``TEST["NAME"]`` or ``"test_" + NAME``; by the time it runs,
Django has already replaced ``NAME`` with the test database's name, so without ``TEST["NAME"]`` (PostgreSQL in
CI) the server looks for ``test_test_neurox``. Passing the resolved name to a fresh process avoids both.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """Starts the child below and waits until it listens; ``url`` is where it answers, ``process`` is the child,
    ``stop()`` ends it. ``env`` adds variables for the child only (e.g. a smaller ``NEUROX_MAX_UPLOAD_BYTES``).
    ``real_workers``: tasks go to the broker for real worker processes (the test settings run them in-process)."""

    def __init__(self, database_name: str, workdir: Path, startup_timeout: float = 90.0,
                 env: dict[str, str] | None = None, real_workers: bool = False):
        self.workdir = workdir
        self.port_file = workdir / "port"
        self.log_path = workdir / "server.log"
        env = {**os.environ, **(env or {}), "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1"}
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.e2e.server", "--database", database_name,
                 "--port-file", str(self.port_file), *(["--real-workers"] if real_workers else [])],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            self.url = f"http://127.0.0.1:{self._wait_for_port(startup_timeout)}"
        except BaseException:
            self.stop()
            raise

    def _wait_for_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.port_file.exists() and (text := self.port_file.read_text().strip()):
                return int(text)
            if self.process.poll() is not None:
                raise RuntimeError(f"The test server exited with status {self.process.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"The test server did not listen within {timeout:.0f} s:\n{self.log()}")

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, then kill after 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(database_name: str, port_file: Path, real_workers: bool = False) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = database_name
    settings.DEBUG = False  # as in the pytest process (pytest-django turns DEBUG off)
    if real_workers:
        settings.CELERY_TASK_ALWAYS_EAGER = False

    import uvicorn
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from neurox_site.asgi import application  # sets Django up

    if real_workers:
        from neurox_site.celery import app

        app.conf.task_always_eager = False

    # Bound here so the port is known before uvicorn starts; connections wait in the backlog until it accepts.
    # IPPROTO_TCP, so that asyncio turns Nagle's algorithm off on its connections (neurox_site/uvicorn_tcp.py)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    # Written whole, then renamed: the parent never reads half a number.
    partial = port_file.with_suffix(".partial")
    partial.write_text(str(listener.getsockname()[1]))
    partial.replace(port_file)

    server = uvicorn.Server(uvicorn.Config(ASGIStaticFilesHandler(application), lifespan="off",
                                           timeout_graceful_shutdown=5))
    parent = os.getppid()

    def stop_when_orphaned():
        # A pytest run killed from outside cannot stop us: do not outlive it.
        while os.getppid() == parent:
            time.sleep(1)
        server.should_exit = True

    threading.Thread(target=stop_when_orphaned, daemon=True).start()
    server.run(sockets=[listener])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="the test database's NAME (created by the parent)")
    parser.add_argument("--port-file", required=True, type=Path)
    parser.add_argument("--real-workers", action="store_true", help="send tasks to the broker (not in-process)")
    arguments = parser.parse_args()
    serve(arguments.database, arguments.port_file, arguments.real_workers)
