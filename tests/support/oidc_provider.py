"""A real OpenID provider process on loopback for the sign-in tests: ``tests/oidc_provider/provider.mjs``
(panva's oidc-provider under Node). Its node_modules are installed from the lock file (``npm ci``) when
missing. No node, npm or provider: a skip on a workstation, a failure under ``CI=true``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.assets import REPO_ROOT, skip_or_fail_in_ci

PROVIDER_DIR = REPO_ROOT / "tests" / "oidc_provider"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _installed_matches_lock() -> bool:
    """node_modules holds the oidc-provider version that package-lock.json names."""
    installed = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
    if not installed.exists():
        return False
    locked = json.loads((PROVIDER_DIR / "package-lock.json").read_text())["packages"]["node_modules/oidc-provider"]
    return json.loads(installed.read_text())["version"] == locked["version"]


def ensure_installed() -> str:
    """The node executable, with the provider's packages installed (``npm ci`` from the lock file if needed)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        skip_or_fail_in_ci("node and npm are needed to run the OpenID provider of the sign-in tests")
    if not _installed_matches_lock():
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR,
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not _installed_matches_lock():
            skip_or_fail_in_ci(f"npm ci in {PROVIDER_DIR} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return node


class OpenIDProvider:
    """The provider on ``port`` (``issuer`` is http://127.0.0.1:<port>) with one confidential client.
    ``accounts`` maps a login (also the ``sub``) to its claims; ``set_accounts`` changes them while it runs."""

    def __init__(self, workdir: Path, port: int, client: dict, accounts: dict, startup_timeout: float = 30.0):
        node = ensure_installed()
        self.issuer = f"http://127.0.0.1:{port}"
        self.accounts_file = workdir / "accounts.json"
        self.set_accounts(accounts)
        config = workdir / "provider.json"
        config.write_text(json.dumps({"port": port, "clients": [client], "accounts_file": str(self.accounts_file)}))
        self.log_path = workdir / "provider.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen([node, str(PROVIDER_DIR / "provider.mjs"), str(config)],
                                            cwd=PROVIDER_DIR, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "NODE_ENV": "test"})
        deadline = time.monotonic() + startup_timeout
        while f"listening {self.issuer}" not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                skip_or_fail_in_ci(f"the OpenID provider did not start on {self.issuer}:\n{self.log()}")
            time.sleep(0.05)

    def set_accounts(self, accounts: dict) -> None:
        partial = self.accounts_file.with_suffix(".partial")
        partial.write_text(json.dumps(accounts))
        partial.replace(self.accounts_file)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
