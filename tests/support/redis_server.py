"""A private ``redis-server`` a test starts, kills and starts again (Debian's redis-server package)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

REDIS_SERVER = shutil.which("redis-server")


class PrivateRedis:
    """A ``redis-server`` of this test's own on ``port``, without persistence: a restart loses everything."""

    def __init__(self, port: int, log_path):
        self.port, self.log_path, self.process = port, log_path, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no save, no goodbye; its queues and unacknowledged messages are gone."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
