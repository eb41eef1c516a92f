"""Writes for projects, memberships and uploads: the only place that changes their state.

Services take the acting user, plain arguments and uploaded file objects (anything with ``name``, ``size`` and
``chunks()``, e.g. Django's ``UploadedFile``), check permissions through :mod:`projects.selectors`, and raise
``PermissionDenied`` or a ``ValidationError`` (:class:`~projects.uploads.UploadRefused` for uploads) whose
message is meant for the user. HTML views and the REST API call the same functions.

Uploads: the size that arrives is checked against the user's quota before anything is written; files are
streamed chunk by chunk into a fresh temporary folder (never read whole into memory), validated there, copied
to the storage backend, and only then is the row created, after checking the quota again under a lock on the
user row (two concurrent uploads cannot both squeeze under the limit). On any refusal or error the temporary
folder, anything already copied to storage and the row are all removed, so nothing remains and no quota is
used.
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
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, Q

from accounts.quotas import QuotaExceeded, check_storage
from analysis.engine.formats import corpus_summary

from . import selectors, uploads
from .models import (
    CorpusFormat,
    CorpusUpload,
    Membership,
    PROJECT_RELATION,
    ModelUpload,
    Project,
    Role,
    TestSetUpload,
)
from .uploads import UploadRefused

log = logging.getLogger(__name__)

UPLOAD_ROOT = "uploads"
WORKDIR_PREFIX = "neurox-upload-"


# ---------------------------------------------------------------------------------------------- projects


def create_project(user, *, name: str, description: str = "") -> Project:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A project needs a name."})
    with transaction.atomic():
        project = Project.objects.create(name=name, description=description or "", owner=user)
        Membership.objects.create(project=project, user=user, role=Role.OWNER)
    return project


def update_project(user, project: Project, *, name: str | None = None, description: str | None = None) -> Project:
    if not selectors.can_write(user, project):
        raise PermissionDenied("Viewers cannot change this project.")
    if name is not None:
        if not name.strip():
            raise ValidationError({"name": "A project needs a name."})
        project.name = name.strip()
    if description is not None:
        project.description = description
    project.save()
    return project


def delete_project(user, project: Project) -> None:
    """Delete the project (its memberships and attachments; the uploads stay in their owners' libraries)."""
    if not selectors.can_manage(user, project):
        raise PermissionDenied("Only the project's owners can delete it.")
    try:
        project.delete()
    except ProtectedError:
        raise ValidationError("This project still has runs that keep it; delete them first.") from None


# ---------------------------------------------------------------------------------------------- members


def find_user(identifier: str):
    """A user by username or e-mail (both case-insensitive)."""
    identifier = (identifier or "").strip()
    if not identifier:
        raise ValidationError({"user": "Give a username or an e-mail address."})
    user_model = get_user_model()
    matches = list(user_model.objects.filter(Q(username__iexact=identifier) | Q(email__iexact=identifier))[:2])
    if len(matches) != 1:
        raise ValidationError({"user": f"No single user has the username or e-mail “{identifier}”."})
    return matches[0]


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role “{role}”: choose owner, editor or viewer."})
    return role


def add_member(actor, project: Project, identifier: str, role: str = Role.VIEWER) -> Membership:
    if not selectors.can_manage(actor, project):
        raise PermissionDenied("Only the project's owners can add members.")
    role = _check_role(role)
    user = find_user(identifier)
    if project.memberships.filter(user=user).exists():
        raise ValidationError({"user": f"{user.get_username()} is already a member of this project."})
    try:
        with transaction.atomic():
            return Membership.objects.create(project=project, user=user, role=role)
    except IntegrityError:  # added by someone else in the meantime
        raise ValidationError({"user": f"{user.get_username()} is already a member of this project."}) from None


def change_role(actor, membership: Membership, role: str) -> Membership:
    project = membership.project
    if not selectors.can_manage(actor, project):
        raise PermissionDenied("Only the project's owners can change roles.")
    role = _check_role(role)
    if membership.user_id == project.owner_id and role != Role.OWNER:
        raise ValidationError({"role": "The person who created the project always stays an owner."})
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def remove_member(actor, membership: Membership) -> None:
    """Owners remove anyone but the project's creator; any member may leave a project themselves."""
    project = membership.project
    leaving = membership.user_id == actor.pk
    if not leaving and not selectors.can_manage(actor, project):
        raise PermissionDenied("Only the project's owners can remove members.")
    if membership.user_id == project.owner_id:
        raise ValidationError("The person who created the project cannot be removed from it.")
    membership.delete()


def membership_in(project: Project, membership_id) -> Membership:
    try:
        return project.memberships.select_related("user", "project").get(pk=membership_id)
    except (Membership.DoesNotExist, ValueError, TypeError):
        from django.http import Http404

        raise Http404("No such member.")


# ---------------------------------------------------------------------------------------------- attachments


def attach_upload(user, project: Project, upload) -> None:
    """Use an upload in a project. Needs write access to the project and sight of the upload."""
    if not selectors.can_write(user, project):
        raise PermissionDenied("Viewers cannot change this project's uploads.")
    if not selectors.uploads_visible_to(user, upload.kind).filter(pk=upload.pk).exists():
        raise PermissionDenied("You cannot use this upload.")
    getattr(project, PROJECT_RELATION[upload.kind]).add(upload)


def detach_upload(user, project: Project, upload) -> None:
    if not selectors.can_write(user, project):
        raise PermissionDenied("Viewers cannot change this project's uploads.")
    getattr(project, PROJECT_RELATION[upload.kind]).remove(upload)


# ---------------------------------------------------------------------------------------------- uploads: plumbing


@contextmanager
def _workdir():
    """A fresh temporary folder, removed whatever happens."""
    base = getattr(settings, "FILE_UPLOAD_TEMP_DIR", None) or None
    path = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=base))
    try:
        yield path
    finally:
        uploads.remove_tree(path)


def _quota_check(user, incoming_bytes: int) -> None:
    try:
        check_storage(user, incoming_bytes)
    except QuotaExceeded as error:
        raise UploadRefused(error.message, code="quota") from None


def _check_incoming(user, files) -> int:
    """Size limits and quota on what arrives, before anything is written."""
    incoming = sum(int(f.size or 0) for f in files)
    limit = settings.NEUROX_MAX_UPLOAD_BYTES
    if incoming > limit:
        raise UploadRefused(f"This upload is {incoming:,} bytes; the limit is {limit:,} bytes.", code="too_large")
    _quota_check(user, incoming)
    return incoming


def _upload_name(uploaded) -> str:
    return os.path.basename(str(getattr(uploaded, "name", "") or "upload"))


def _stream_to(uploaded, target: Path) -> int:
    """Write an uploaded file to ``target`` chunk by chunk; returns the bytes written."""
    written = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "xb") as sink:
        for chunk in uploaded.chunks():
            sink.write(chunk)
            written += len(chunk)
    return written


def _file_names(main, companion, *, what: str, code: str) -> tuple[str, str | None]:
    """Names of an upload's main file and its optional line-aligned companion (labels, references)."""
    main_name = _upload_name(main)
    companion_name = _upload_name(companion) if companion is not None else None
    if companion_name is not None and companion_name == main_name:
        raise UploadRefused(f"The {what} must have different names.", code=code)
    return main_name, companion_name


def _stream_pair(main, companion, folder: Path, main_name: str, companion_name: str | None) -> None:
    _stream_to(main, folder / main_name)
    if companion is not None:
        _stream_to(companion, folder / companion_name)


def _delete_stored(prefix: str, names) -> None:
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


def _store_and_create(user, source_root: Path, relative_names: list[str], build_row):
    """Copy validated files to storage under ``uploads/<user>/<uuid>/`` and create the row.

    ``build_row(prefix, stored_names, size_bytes)`` returns an unsaved upload instance. The quota is checked
    again with the bytes really kept, under a lock on the user row; any failure removes the copied files."""
    upload_uuid = uuid.uuid4()
    prefix = f"{UPLOAD_ROOT}/{user.pk}/{upload_uuid}"
    size_bytes = sum((source_root / name).stat().st_size for name in relative_names)
    _quota_check(user, size_bytes)  # cheap early answer before copying
    stored: dict[str, str] = {}
    try:
        for name in relative_names:
            with open(source_root / name, "rb") as handle:
                stored_name = default_storage.save(f"{prefix}/{name}", File(handle, name=name))
            stored[name] = stored_name[len(prefix) + 1:]
        with transaction.atomic():
            get_user_model().objects.select_for_update().filter(pk=user.pk).first()
            _quota_check(user, size_bytes)
            row = build_row(prefix, stored, size_bytes)
            row.uuid = upload_uuid
            row.owner = user
            row.storage_prefix = prefix
            row.size_bytes = size_bytes
            row.save()
        return row
    except BaseException:
        _delete_stored(prefix, stored.values())
        raise


def _relative_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _clean_name(name: str, fallback: str) -> str:
    name = (name or "").strip()
    return name[:200] if name else fallback


# ---------------------------------------------------------------------------------------------- uploads: kinds


def create_model_upload(user, *, files: list, name: str = "", description: str = "") -> ModelUpload:
    """A model sent as one ``.zip`` / ``.tar.gz`` of its folder, or as separate files (config.json,
    *.safetensors, tokenizer files). Refused: pickle weights, unknown model_type, bad config.json, unsafe
    archives, quota."""
    files = list(files)
    if not files:
        raise UploadRefused("No files were sent.", code="model")
    names = [_upload_name(f) for f in files]
    is_archive = len(files) == 1 and uploads.archive_kind(names[0]) is not None
    if not is_archive:
        uploads.check_model_file_names(names)
    _check_incoming(user, files)

    with _workdir() as work:
        unpacked = work / "model"
        if is_archive:
            archive_path = work / "incoming" / names[0]
            _stream_to(files[0], archive_path)
            uploads.extract_archive(
                archive_path, unpacked, archive_name=names[0],
                max_files=settings.NEUROX_MAX_ARCHIVE_FILES, max_bytes=settings.NEUROX_MAX_UNPACKED_BYTES,
            )
            archive_path.unlink()
        else:
            for uploaded, file_name in zip(files, names):
                _stream_to(uploaded, unpacked / file_name)
        root = uploads.find_model_root(unpacked)
        info = uploads.inspect_model(root)
        if root != unpacked:
            default_name = root.name
        elif is_archive:
            default_name = names[0].rsplit(".tar", 1)[0].rsplit(".", 1)[0] if "." in names[0] else names[0]
        else:
            default_name = info.architecture

        def build_row(prefix, stored, size_bytes):
            return ModelUpload(
                name=_clean_name(name, default_name),
                description=description or "",
                sha256=info.sha256,
                files={stored[n]: info.files[n] for n in info.files},
                metadata={**info.to_dict(), "uploaded_as": names},
                model_type=info.model_type,
                architecture=info.architecture,
                model_kind=info.kind,
                n_layers=info.n_layers,
                hidden_size=info.hidden_size,
                n_parameters=info.n_parameters,
            )

        return _store_and_create(user, root, sorted(info.files), build_row)


def create_corpus_upload(
    user, *, file, format: str = CorpusFormat.CONLLU, label_column: str | None = "upos", label_file=None,
    name: str = "", description: str = "",
) -> CorpusUpload:
    """A corpus as CoNLL-U (with the chosen label column; empty for none) or NeuroX plain ``.word`` with an
    optional line-aligned ``.label`` file."""
    if format not in CorpusFormat.values:
        raise UploadRefused(f"Unknown corpus format “{format}”: choose conllu or plain.", code="corpus")
    if format == CorpusFormat.CONLLU and label_file is not None:
        raise UploadRefused("A CoNLL-U corpus carries its labels in a column; send no separate label file.",
                            code="corpus")
    word_name, label_name = _file_names(file, label_file, what="word file and the label file", code="corpus")
    _check_incoming(user, [f for f in (file, label_file) if f is not None])

    with _workdir() as work:
        folder = work / "corpus"
        _stream_pair(file, label_file, folder, word_name, label_name)
        corpus = uploads.read_corpus(
            format, folder / word_name, filename=word_name, label_column=label_column or None,
            label_path=folder / label_name if label_name else None, label_filename=label_name,
            max_sentence_words=settings.NEUROX_MAX_SENTENCE_WORDS,
        )
        summary = corpus_summary(corpus)
        del corpus  # the summary is all the row keeps; the engine re-reads the files

        def build_row(prefix, stored, size_bytes):
            return CorpusUpload(
                name=_clean_name(name, word_name),
                description=description or "",
                sha256=summary["sha256"],
                files={stored[n]: summary["file_sha256"][n] for n in summary["file_sha256"]},
                metadata={**summary, "word_file": stored[word_name],
                          "label_file": stored[label_name] if label_name else None},
                format=format,
                label_column=summary["label_column"],
                n_sentences=summary["sentences"],
                n_words=summary["words"],
                n_labels=summary["n_labels"],
            )

        return _store_and_create(user, folder, _relative_files(folder), build_row)


def create_test_set_upload(user, *, file, reference_file=None, name: str = "", description: str = "") -> TestSetUpload:
    """Source sentences, one per line, and optionally line-aligned references (needed for encoder-decoder
    models, whose ablation is scored with BLEU/chrF)."""
    source_name, reference_name = _file_names(file, reference_file, what="source file and the reference file",
                                              code="test_set")
    _check_incoming(user, [f for f in (file, reference_file) if f is not None])

    with _workdir() as work:
        folder = work / "test_set"
        _stream_pair(file, reference_file, folder, source_name, reference_name)
        test_set = uploads.read_test_set(
            folder / source_name, filename=source_name,
            reference_path=folder / reference_name if reference_name else None, reference_filename=reference_name,
        )

        def build_row(prefix, stored, size_bytes):
            return TestSetUpload(
                name=_clean_name(name, source_name),
                description=description or "",
                sha256=test_set.source_sha256,
                files={stored[n]: test_set.file_sha256[n] for n in test_set.file_sha256},
                metadata={
                    "sentences": len(test_set.sources),
                    "has_references": test_set.references is not None,
                    "source_file": stored[source_name],
                    "reference_file": stored[reference_name] if reference_name else None,
                    "file_sha256": test_set.file_sha256,
                },
                n_sentences=len(test_set.sources),
                has_references=test_set.references is not None,
            )

        return _store_and_create(user, folder, _relative_files(folder), build_row)


def delete_upload(user, upload) -> None:
    """Remove an upload from the owner's library: its files, its row, its project attachments."""
    if upload.owner_id != user.pk:
        raise PermissionDenied("Only the person who uploaded this can delete it.")
    prefix, names = upload.storage_prefix, list(upload.files)
    try:
        upload.delete()
    except ProtectedError:
        raise ValidationError("Runs still use this upload; delete them first.") from None
    transaction.on_commit(lambda: _delete_stored(prefix, names))


def rename_upload(user, upload, *, name: str, description: str | None = None):
    if upload.owner_id != user.pk:
        raise PermissionDenied("Only the person who uploaded this can rename it.")
    if not (name or "").strip():
        raise ValidationError({"name": "An upload needs a name."})
    upload.name = name.strip()[:200]
    if description is not None:
        upload.description = description
    upload.save(update_fields=["name", "description"])
    return upload


# ---------------------------------------------------------------------------------------------- for the engine


def local_folder(upload, cache_dir: Path | None = None) -> Path:
    """A local folder holding the upload's files, for code that needs paths (loading a model, reading a
    corpus). Local storage: the storage folder itself. Remote storage (S3): a copy under ``cache_dir``
    (default ``NEUROX_DATA_DIR/cache/uploads``), keyed by the upload's uuid and made once."""
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
            with default_storage.open(upload.storage_name(name), "rb") as source, open(destination, "wb") as sink:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    sink.write(chunk)
        os.replace(partial, target)
    except BaseException:
        uploads.remove_tree(partial)
        if target.is_dir():  # another process finished first
            return target
        raise
    return target
