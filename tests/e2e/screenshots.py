"""Full-page screenshots of the browser tests, kept as CI artefacts: ``$NEUROX_ARTIFACTS_DIR/screenshots/``
(default ``var/artifacts/screenshots/`` in the repository, which git ignores). ``.ci/run`` prints the folder.

    def test_something(page, screenshots):       # the fixture is in tests/e2e/conftest.py
        screenshots.take(page, "analysis")       # -> .../screenshots/<test name>/01-analysis.png

Each test gets its own folder (emptied when the test starts, so the folder shows the last run only), and the
files are numbered in the order the test took them, so the folder reads as the journey.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from playwright.sync_api import Page

REPO_ROOT = Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path:
    return Path(os.environ.get("NEUROX_ARTIFACTS_DIR") or REPO_ROOT / "var" / "artifacts")


def screenshots_dir() -> Path:
    return artifacts_dir() / "screenshots"


class Screenshots:
    """The screenshots of one test: ``take(page, "name")`` saves ``NN-name.png`` and returns its path."""

    def __init__(self, folder: Path):
        self.folder, self.count = folder, 0
        shutil.rmtree(folder, ignore_errors=True)

    def take(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{_safe(name)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path


def for_test(node_name: str) -> Screenshots:
    return Screenshots(screenshots_dir() / _safe(node_name))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:100] or "page"
