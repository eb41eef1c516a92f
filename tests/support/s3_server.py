"""A real S3-compatible server process on loopback for the tests: moto's server mode (``python -m moto.server``,
pinned in requirements-dev.txt), speaking the S3 HTTP API that boto3 and django-storages use in production.

Started once per test session by the ``s3_server`` fixture; each test gets a bucket of its own. Where it cannot
start, its tests are skipped, except under ``CI=true``, where they fail."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.ports import free_port

ACCESS_KEY, SECRET_KEY, REGION = "neurox-test-key", "neurox-test-secret", "us-east-1"


def unavailable(reason: str):
    """Skip, or under ``CI=true`` fail: a test that needs the server never passes silently without it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the S3 test server is needed under CI=true: {reason}")
    pytest.skip(reason)


class S3Server:
    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "false"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto.server exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"moto.server did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def connection(self, bucket: str) -> dict:
        """The keywords of ``neurox_site.settings.s3_storage`` for ``bucket`` on this server."""
        return {"bucket_name": bucket, "endpoint_url": self.url, "region_name": REGION, "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY}

    def environment(self, bucket: str) -> dict[str, str]:
        """The same, as the environment a node's processes read (README: the two-node setup)."""
        return {"NEUROX_S3_BUCKET": bucket, "NEUROX_S3_ENDPOINT_URL": self.url, "NEUROX_S3_REGION": REGION,
                "NEUROX_S3_ACCESS_KEY_ID": ACCESS_KEY, "NEUROX_S3_SECRET_ACCESS_KEY": SECRET_KEY}

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def moto_installed() -> bool:
    return importlib.util.find_spec("moto") is not None and importlib.util.find_spec("flask") is not None
