"""Results in an S3-compatible bucket, so that web servers and workers on machines that share no folder see the
same results. On only with ``NEUROX_RESULTS_IN_S3`` (then ``STORAGES["results"]`` exists); otherwise every
function here does nothing and ``results_root()`` is the one folder all processes share, as before.

With it, each node's ``NEUROX_RESULTS_DIR`` is a cache of the bucket:

- ``publish(relative)``: once a step has its result complete on local disk (``storage.py`` renames every result
  into place), the runner uploads its files under ``data/<relative>``, then ``manifests/<relative>.json`` listing
  them and their sizes. The manifest goes last: its presence means the whole result is in the bucket (one S3 PUT
  is atomic), so a reader never takes half a result for a whole one.
- ``local(relative)``: the local path of a result, fetched on its first use on this node: whole files (the pages
  memory-map the ``.npy`` arrays, which needs real files), downloaded into a fresh folder beside the results,
  checked against the manifest's sizes, then renamed into place.
- A marker ``.cache/<relative>.json`` says a local copy is whole (written after a publish or a fetch); its time
  is the copy's last use in some process, and with ``NEUROX_RESULTS_CACHE_BYTES`` the least recently used copies
  are removed once the cache grows past that (never one used in the last ``RECENT_SECONDS``: a reader may hold
  its path). A per-result lock file serialises the fetches and the removal of one result on a node.

Errors talking to the bucket become ``ObjectStoreError`` (a RuntimeError, so a step fails with its text).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from analysis.models import results_root

DATA = "data"
MANIFESTS = "manifests"
CACHE = ".cache"  # inside results_root(): markers and locks
FETCHING = ".fetching"  # inside results_root(): downloads in progress
RECENT_SECONDS = 60.0


class ObjectStoreError(RuntimeError):
    pass


def enabled() -> bool:
    return "results" in settings.STORAGES


def _storage():
    from django.core.files.storage import storages

    return storages["results"]


def _key(name: str) -> str:
    """The bucket key of ``name`` under the results storage's prefix."""
    return _storage()._normalize_name(name)


def _errors():
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError


def _manifest_name(relative: str) -> str:
    return f"{MANIFESTS}/{relative}.json"


def _data_name(relative: str, folder: bool, name: str) -> str:
    return f"{DATA}/{relative}/{name}" if folder else f"{DATA}/{relative}"


def _failed(what: str, relative: str, error: Exception) -> ObjectStoreError:
    return ObjectStoreError(f"the object store could not {what} the result {relative} ({type(error).__name__}: "
                            f"{str(error)[:200]}); retry the run once the storage answers")


# ------------------------------------------------------------------------------------------------ local markers


def _marker(relative: str) -> Path:
    return results_root() / CACHE / f"{relative}.json"


@contextmanager
def _locked(relative: str):
    lock_path = results_root() / CACHE / f"{relative}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _mark_whole(relative: str, manifest: dict) -> None:
    marker = _marker(relative)
    marker.parent.mkdir(parents=True, exist_ok=True)
    partial = marker.with_name(f".{marker.name}.{os.getpid()}")
    partial.write_text(json.dumps(manifest), encoding="utf-8")
    os.replace(partial, marker)


def _local_files(path: Path) -> tuple[bool, dict[str, Path]]:
    if path.is_file():
        return False, {path.name: path}
    if path.is_dir():
        return True, {p.relative_to(path).as_posix(): p for p in sorted(path.rglob("*")) if p.is_file()}
    raise ObjectStoreError(f"the result {path.name} is not on this node's disk, so it cannot be published")


# ------------------------------------------------------------------------------------------------ the bucket


def _read_manifest(relative: str) -> dict | None:
    _, ClientError = _errors()
    try:
        body = _storage().bucket.Object(_key(_manifest_name(relative))).get()["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return json.loads(body)


def is_published(relative: str) -> bool:
    return enabled() and bool(relative) and _read_manifest(relative) is not None


def publish(relative: str) -> None:
    """Upload the complete local result ``relative`` (under ``results_root()``) and then its manifest; a result
    already published (a redelivered step) is left as it is. Nothing without ``NEUROX_RESULTS_IN_S3``."""
    if not enabled() or not relative:
        return
    folder, files = _local_files(results_root() / relative)
    manifest = {"relative": relative, "folder": folder, "files": {name: p.stat().st_size for name, p in files.items()}}
    manifest["bytes"] = sum(manifest["files"].values())
    try:
        if _read_manifest(relative) is None:
            storage = _storage()
            for name, path in files.items():
                storage.bucket.upload_file(str(path), _key(_data_name(relative, folder, name)),
                                           Config=storage.transfer_config)
            storage.bucket.put_object(Key=_key(_manifest_name(relative)), Body=json.dumps(manifest).encode(),
                                      ContentType="application/json")
    except _errors() as error:
        raise _failed("store", relative, error) from error
    _mark_whole(relative, manifest)
    evict(keep=relative)


def fetch(relative: str) -> bool:
    """Bring the published result ``relative`` to this node's disk (whole files, renamed into place) unless a whole
    copy is here already; False when the bucket has no such result."""
    target = results_root() / relative
    with _locked(relative):
        if _marker(relative).exists():
            return True
        try:
            manifest = _read_manifest(relative)
            if manifest is None:
                return False
            staging_root = results_root() / FETCHING
            staging_root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=staging_root))
            try:
                _download(relative, manifest, staging / "result")
                _install(staging / "result", target, staging)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except _errors() as error:
            raise _failed("fetch", relative, error) from error
        _mark_whole(relative, manifest)
    evict(keep=relative)
    return True


def _download(relative: str, manifest: dict, destination: Path) -> None:
    storage = _storage()
    folder = manifest["folder"]
    for name, size in manifest["files"].items():
        path = destination / name if folder else destination
        path.parent.mkdir(parents=True, exist_ok=True)
        storage.bucket.download_file(_key(_data_name(relative, folder, name)), str(path),
                                     Config=storage.transfer_config)
        if path.stat().st_size != size:
            raise ObjectStoreError(f"the object store's copy of {relative}/{name} has {path.stat().st_size:,} "
                                   f"bytes where {size:,} were published; retry the run to rebuild it")


def _install(fetched: Path, target: Path, staging: Path) -> None:
    """Rename the fetched result into place; a partial local copy there (an interrupted build) is moved aside."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        os.replace(target, staging / "replaced")
    os.replace(fetched, target)


def local(relative: str) -> Path:
    """The path of the result ``relative`` on this node's disk, fetched from the bucket on first use. Without
    ``NEUROX_RESULTS_IN_S3``, or for a result the bucket does not have, just the path under ``results_root()``
    (whoever reads it says what is missing)."""
    path = results_root() / relative
    if not enabled() or not relative:
        return path
    marker = _marker(relative)
    if marker.exists():
        try:
            os.utime(marker)  # its last use, for the eviction order
        except FileNotFoundError:  # evicted just now
            fetch(relative)
        return path
    fetch(relative)
    return path


def remove(relative: str) -> None:
    """Remove a reclaimed result from the bucket (the manifest first, so no node fetches half of it) and from this
    node's cache; other nodes' copies go when their caches evict them."""
    if not enabled() or not relative:
        return
    try:
        manifest = _read_manifest(relative)
        bucket = _storage().bucket
        bucket.Object(_key(_manifest_name(relative))).delete()
        if manifest is not None:
            names = [_data_name(relative, manifest["folder"], name) for name in manifest["files"]]
            for start in range(0, len(names), 1000):
                bucket.delete_objects(Delete={"Objects": [{"Key": _key(n)} for n in names[start:start + 1000]]})
    except _errors() as error:
        raise _failed("remove", relative, error) from error
    _marker(relative).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ the cache bound


def cached() -> list[tuple[float, int, str]]:
    """This node's whole copies: (last use, bytes, relative), least recently used first."""
    root = results_root() / CACHE
    entries = []
    for marker in root.rglob("*.json") if root.is_dir() else []:
        if marker.name.startswith("."):
            continue
        try:
            used, size = marker.stat().st_mtime, int(json.loads(marker.read_text(encoding="utf-8"))["bytes"])
        except (OSError, ValueError, KeyError):
            continue
        entries.append((used, size, marker.relative_to(root).as_posix()[:-len(".json")]))
    return sorted(entries)


def evict(keep: str | None = None) -> list[str]:
    """Remove the least recently used whole copies until the cache holds at most ``NEUROX_RESULTS_CACHE_BYTES``
    (0: no bound); only copies the bucket has (a marker is written after publishing or fetching). Returns the
    results removed."""
    bound = settings.NEUROX_RESULTS_CACHE_BYTES
    if not enabled() or bound <= 0:
        return []
    entries = cached()
    total = sum(size for _, size, _ in entries)
    removed = []
    now = time.time()
    for used, size, relative in entries:
        if total <= bound:
            break
        if relative == keep or now - used < RECENT_SECONDS:
            continue
        with _locked(relative):
            marker = _marker(relative)
            if not marker.exists():
                continue
            marker.unlink()
            path = results_root() / relative
            if path.is_dir():
                trash = results_root() / FETCHING / f"evicted-{path.name}-{os.getpid()}-{time.monotonic_ns()}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, trash)  # readers holding files keep them; the space returns when they close
                shutil.rmtree(trash, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        total -= size
        removed.append(relative)
    return removed
