"""Results on disk, for the step types that build them and the pages that read them: every result is written
beside its place and renamed into it, so a reader never sees half of one. With ``NEUROX_RESULTS_IN_S3`` the
folder is this node's cache of the object store (``object_store.py``): read a result through ``result_path``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from analysis.models import results_root

from . import object_store


def stores_root() -> Path:
    return results_root() / "stores"


def result_path(relative: str) -> Path:
    """The result ``relative`` on this node's disk: fetched whole from the object store on its first use here when
    results live there; otherwise (the embedded default) the path under the one shared results folder."""
    return object_store.local(relative)


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def publish_folder(build, target: Path) -> None:
    """``build(folder)`` fills a fresh folder beside ``target``, which is then renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(partial)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def publish_json(target: Path, data: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, target)


def read_json(target: Path) -> dict:
    return json.loads(target.read_text(encoding="utf-8"))


def open_store(key: str):
    """The complete activation store ``key``, else ``RuntimeError`` saying how to get it back."""
    from analysis.engine.store import open_complete

    store = open_complete(result_path(f"stores/{key}"), key)
    if store is None:
        raise RuntimeError(f"the activation store {key[:12]} is missing or incomplete; retry the run to rebuild it")
    return store
