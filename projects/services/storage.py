"""The plumbing behind every upload: a temporary folder, quota checks, streaming, the storage backend.

The size that arrives is checked against the user's quota before anything is written; files are streamed
chunk by chunk into a fresh temporary folder (never read whole into memory), validated there, copied to the
storage backend, and only then is the row created, after checking the quota again under a lock on the user row
(two concurrent uploads cannot both squeeze under the limit). On any refusal or error the temporary folder,
anything already copied to storage and the row are all removed, so nothing remains and no quota is used.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from accounts.quotas import QuotaExceeded, check_storage, storage_left

from .. import selectors, uploads
from ..uploads import UploadRefused

log = logging.getLogger(__name__)

UPLOAD_ROOT = "uploads"
WORKDIR_PREFIX = "neurox-upload-"


@contextmanager
def workdir():
    """A fresh temporary folder, removed whatever happens."""
    base = getattr(settings, "FILE_UPLOAD_TEMP_DIR", None) or None
    path = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=base))
    try:
        yield path
    finally:
        uploads.remove_tree(path)


def quota_check(user, incoming_bytes: int) -> None:
    try:
        check_storage(user, incoming_bytes)  # uploads and results: accounts.quotas.storage_used
    except QuotaExceeded as error:
        raise UploadRefused(error.message, code="quota") from None


def bytes_left(user) -> int:
    """What the user may still store (their uploads and their runs' results counted)."""
    return storage_left(user)


def check_incoming(user, files) -> int:
    """Size limits and quota on what arrives, before anything is written."""
    incoming = sum(int(f.size or 0) for f in files)
    limit = settings.NEUROX_MAX_UPLOAD_BYTES
    if incoming > limit:
        raise UploadRefused(f"This upload is {incoming:,} bytes; the limit is {limit:,} bytes.", code="too_large")
    quota_check(user, incoming)
    return incoming


def upload_name(uploaded) -> str:
    return os.path.basename(str(getattr(uploaded, "name", "") or "upload"))


def stream_to(uploaded, target: Path) -> int:
    """Write an uploaded file to ``target`` chunk by chunk; returns the bytes written."""
    written = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as sink:
        for chunk in uploaded.chunks():
            sink.write(chunk)
            written += len(chunk)
    return written


def file_names(main, companion, *, what: str, code: str) -> tuple[str, str | None]:
    """Names of an upload's main file and its optional line-aligned companion (labels, references)."""
    main_name = upload_name(main)
    companion_name = upload_name(companion) if companion is not None else None
    if companion_name is not None and companion_name == main_name:
        raise UploadRefused(f"The {what} must have different names.", code=code)
    return main_name, companion_name


def stream_pair(main, companion, folder: Path, main_name: str, companion_name: str | None) -> None:
    stream_to(main, folder / main_name)
    if companion is not None:
        stream_to(companion, folder / companion_name)


def delete_stored(prefix: str, names) -> None:
    for name in names:
        try:
            default_storage.delete(f"{prefix}/{name}")
        except Exception:  # cleanup must not hide the original error
            log.exception("could not delete %s/%s from storage", prefix, name)
    try:  # local storage keeps empty folders; remove them too
        local = Path(default_storage.path(prefix))
    except NotImplementedError:
        return
    for folder in sorted((p for p in local.rglob("*") if p.is_dir()), reverse=True) if local.exists() else []:
        _rmdir_quietly(folder)
    _rmdir_quietly(local)
    _rmdir_quietly(local.parent)  # uploads/<user id>, if now empty


def _rmdir_quietly(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def store_and_create(user, source_root: Path, relative_names: list[str], build_row):
    """Copy validated files to storage under ``uploads/<user>/<uuid>/`` and create the row.

    ``build_row(prefix, stored_names, size_bytes)`` returns an unsaved upload instance. The quota is checked
    again with the bytes really kept, under a lock on the user row; any failure removes the copied files."""
    upload_uuid = uuid.uuid4()
    prefix = f"{UPLOAD_ROOT}/{user.pk}/{upload_uuid}"
    size_bytes = sum((source_root / name).stat().st_size for name in relative_names)
    quota_check(user, size_bytes)  # cheap early answer before copying
    stored: dict[str, str] = {}
    try:
        for name in relative_names:
            with open(source_root / name, "rb") as handle:
                stored_name = default_storage.save(f"{prefix}/{name}", File(handle, name=name))
            stored[name] = stored_name[len(prefix) + 1:]
        with transaction.atomic():
            get_user_model().objects.select_for_update().filter(pk=user.pk).first()
            quota_check(user, size_bytes)
            row = build_row(prefix, stored, size_bytes)
            if (same := selectors.first_upload_with_content(user, row.kind, row.sha256)) is not None:
                row.metadata.setdefault("notes", []).append(
                    f"You uploaded the same content before as “{same.name}” on {same.created_at:%Y-%m-%d}.")
                row.metadata["same_content_as"] = same.pk
            row.uuid = upload_uuid
            row.owner = user
            row.storage_prefix = prefix
            row.size_bytes = size_bytes
            row.save()
        return row
    except BaseException:
        delete_stored(prefix, stored.values())
        raise


def relative_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


class UploadMissing(RuntimeError):
    """An upload's file is gone from storage (its text says which, and what to do)."""


def copy_from_storage(upload, name: str, destination: Path) -> None:
    """Copy the upload's file ``name`` from (remote) storage to ``destination``: from S3 straight to the file
    (boto3's managed transfer: ranged, parallel, never whole in memory), else through the storage API."""
    stored = upload.storage_name(name)
    try:
        if (bucket := getattr(default_storage, "bucket", None)) is not None:  # django-storages' S3Storage
            bucket.download_file(default_storage._normalize_name(stored), str(destination),
                                 Config=default_storage.transfer_config)
            return
        with default_storage.open(stored, "rb") as source, open(destination, "wb") as sink:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                sink.write(chunk)
    except Exception as error:
        if not _is_missing(error):
            raise
        raise UploadMissing(f"the file {name} of the upload “{upload.name}” is missing from storage ({stored}); "
                            "upload it again, or ask an operator to restore it") from None


def _is_missing(error: Exception) -> bool:
    if isinstance(error, FileNotFoundError):
        return True
    response = getattr(error, "response", None)  # botocore's ClientError
    return isinstance(response, dict) and str(response.get("Error", {}).get("Code")) in ("404", "NoSuchKey",
                                                                                          "NotFound")


def local_folder(upload, cache_dir: Path | None = None) -> Path:
    """A local folder holding the upload's files, for code that needs paths (loading a model, reading a
    corpus). Local storage: the storage folder itself. Remote storage (S3): a copy under ``cache_dir``
    (default ``NEUROX_DATA_DIR/cache/uploads``), keyed by the upload's uuid and made once; a file missing there
    raises ``UploadMissing`` saying so."""
    try:
        return Path(default_storage.path(upload.storage_prefix))
    except NotImplementedError:
        pass
    cache_root = Path(cache_dir or Path(settings.DATA_DIR) / "cache" / "uploads")
    target = cache_root / str(upload.uuid)
    if target.is_dir():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{upload.uuid}-", dir=cache_root))
    try:
        for name in upload.files:
            destination = partial / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            copy_from_storage(upload, name, destination)
        os.replace(partial, target)
    except BaseException:
        uploads.remove_tree(partial)
        if target.is_dir():  # another process finished first
            return target
        raise
    return target
