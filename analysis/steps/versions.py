"""What a result is computed with: the engine's own identity and the libraries' versions, recorded in the
result's meta when a step finishes (``analysis.runs.runner``) and shown by its provenance."""

from __future__ import annotations

import hashlib
import platform
from functools import lru_cache
from importlib import metadata
from pathlib import Path

LIBRARIES = {"torch": "torch", "transformers": "transformers", "numpy": "numpy", "scikit-learn": "scikit-learn"}
ENGINE_DIR = Path(__file__).resolve().parents[1] / "engine"


@lru_cache(maxsize=1)
def engine_version() -> str:
    """The engine's identity: the sha256 (first 12) of its source files, so two results with the same value
    were computed by the same engine code, whatever the deployment calls its release."""
    digest = hashlib.sha256()
    for path in sorted(ENGINE_DIR.rglob("*.py")):
        digest.update(path.relative_to(ENGINE_DIR.parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def library_versions() -> dict:
    """What a result is computed with, recorded in its meta at compute time."""
    versions = {"engine": engine_version(), "python": platform.python_version()}
    for name, distribution in LIBRARIES.items():
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
