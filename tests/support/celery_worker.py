"""Real Celery worker (and beat) processes for the tests, on the test database.

The parent (a pytest process, after pytest-django created the test database) starts::

    python -m tests.support.celery_worker --database <test database name> -- worker -Q gpu,cpu ...

The child loads ``tests.settings`` with the same environment (``DATABASE_URL``, ``REDIS_URL``, and the folders
the parent passes), points the default database at the parent's test database (as ``tests/e2e/server.py``
does, and for the same reason), turns eager execution off (the test settings turn it on for everyone else) and
runs Celery with the arguments after ``--``. Each child gets its own process group, so ``kill(SIGKILL)`` ends
the worker and its pool processes at once, like a machine going down.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class CeleryProcess:
    """``celery <args>`` in a child process on ``database_name``; ``ready`` waits for its ready line."""

    def __init__(self, database_name: str, args: list[str], log_path: Path, env: dict[str, str]):
        self.log_path = log_path
        env = {**os.environ, **env, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1"}
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.celery_worker", "--database", database_name, "--", *args],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def log(self, tail: int = 8000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    def wait_for_line(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log(tail=10**7):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"celery exited with status {self.process.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"celery did not print {text!r} within {timeout:.0f} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no acknowledgement, nothing cleaned up."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def main(database_name: str, celery_args: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = database_name
    settings.CELERY_TASK_ALWAYS_EAGER = False

    import django

    django.setup()
    from neurox_site.celery import app

    app.conf.task_always_eager = False
    app.start(list(celery_args))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="the test database's NAME (created by the parent)")
    parser.add_argument("celery_args", nargs=argparse.REMAINDER)
    arguments = parser.parse_args()
    args = arguments.celery_args
    main(arguments.database, args[1:] if args[:1] == ["--"] else args)
