"""The user's library: creating (validating and storing), renaming and deleting uploads.

:func:`create_upload` is the one entry point that the HTML form and the API both call with the fields they
parsed; it dispatches on the kind of upload."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import ProtectedError

from analysis.engine.formats import corpus_summary

from .. import uploads
from ..models import CorpusFormat, CorpusUpload, ModelUpload, TestSetUpload, UploadKind
from ..uploads import UploadRefused
from .storage import (
    bytes_left,
    check_incoming,
    delete_stored,
    file_names,
    relative_files,
    store_and_create,
    stream_pair,
    stream_to,
    upload_name,
    workdir,
)


def _clean_name(name: str, fallback: str) -> str:
    name = (name or "").strip()
    return name[:200] if name else fallback


def model_title(architecture: str, n_parameters: int) -> str:
    """A model upload's default name: its architecture and size, e.g. "BertModel · 22.7M params"."""
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n_parameters >= scale:
            return f"{architecture} · {n_parameters / scale:.1f}{suffix} params"
    return f"{architecture} · {n_parameters} params"


def create_upload(user, kind: str, data: dict):
    """Validate and keep one upload of ``kind`` from the fields a form or the API parsed: ``name``,
    ``description`` and, by kind, ``files`` (model); ``file``, ``format``, ``label_column``, ``label_file``
    (corpus); ``file``, ``reference_file`` (test set)."""
    common = {"name": data.get("name") or "", "description": data.get("description") or ""}
    kind = UploadKind(kind)
    if kind == UploadKind.MODEL:
        return create_model_upload(user, files=data["files"], **common)
    if kind == UploadKind.CORPUS:
        return create_corpus_upload(
            user, file=data["file"], format=data.get("format") or CorpusFormat.CONLLU,
            label_column=data.get("label_column"), label_file=data.get("label_file"), **common,
        )
    return create_test_set_upload(user, file=data["file"], reference_file=data.get("reference_file"), **common)


def create_model_upload(user, *, files: list, name: str = "", description: str = "") -> ModelUpload:
    """A model sent as one ``.zip`` / ``.tar.gz`` of its folder, or as separate files (config.json,
    *.safetensors, tokenizer files). Refused: pickle weights, unknown model_type, bad config.json, unsafe
    archives, quota."""
    files = list(files)
    if not files:
        raise UploadRefused("No files were sent.", code="model")
    names = [upload_name(f) for f in files]
    is_archive = len(files) == 1 and uploads.archive_kind(names[0]) is not None
    ignored = {} if is_archive else uploads.check_model_file_names(names)
    check_incoming(user, files)

    with workdir() as work:
        unpacked = work / "model"
        if is_archive:
            archive_path = work / "incoming" / names[0]
            stream_to(files[0], archive_path)
            extracted = uploads.extract_archive(
                archive_path, unpacked, archive_name=names[0], max_files=settings.NEUROX_MAX_ARCHIVE_FILES,
                max_bytes=settings.NEUROX_MAX_UNPACKED_BYTES, quota_left=bytes_left(user),
                rule=uploads.model_file_rule,
            )
            ignored = extracted.ignored
            archive_path.unlink()
        else:
            for uploaded, file_name in zip(files, names):
                if file_name not in ignored:
                    stream_to(uploaded, unpacked / file_name)
        root = uploads.find_model_root(unpacked)
        info = uploads.inspect_model(root)
        notes = [*info.warnings, *filter(None, [uploads.ignored_note(ignored)])]

        def build_row(prefix, stored, size_bytes):
            return ModelUpload(
                name=_clean_name(name, model_title(info.architecture, info.n_parameters)),
                description=description or "",
                sha256=info.sha256,
                files={stored[n]: info.files[n] for n in info.files},
                metadata={**info.to_dict(), "uploaded_as": names, "ignored": ignored, "notes": notes},
                model_type=info.model_type,
                architecture=info.architecture,
                model_kind=info.kind,
                n_layers=info.n_layers,
                hidden_size=info.hidden_size,
                n_parameters=info.n_parameters,
            )

        return store_and_create(user, root, sorted(info.files), build_row)


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
    # the plain format's labels come from its .label file; a CoNLL-U column is checked before any file is read
    label_column = uploads.check_label_column(label_column) if format == CorpusFormat.CONLLU else None
    word_name, label_name = file_names(file, label_file, what="word file and the label file", code="corpus")
    check_incoming(user, [f for f in (file, label_file) if f is not None])

    with workdir() as work:
        folder = work / "corpus"
        stream_pair(file, label_file, folder, word_name, label_name)
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
                          "label_file": stored[label_name] if label_name else None,
                          "notes": list(summary["warnings"])},
                format=format,
                label_column=summary["label_column"],
                n_sentences=summary["sentences"],
                n_words=summary["words"],
                n_labels=summary["n_labels"],
            )

        return store_and_create(user, folder, relative_files(folder), build_row)


def create_test_set_upload(user, *, file, reference_file=None, name: str = "", description: str = "") -> TestSetUpload:
    """Source sentences, one per line, and optionally line-aligned references (needed for encoder-decoder
    models, whose ablation is scored with BLEU/chrF)."""
    source_name, reference_name = file_names(file, reference_file, what="source file and the reference file",
                                             code="test_set")
    check_incoming(user, [f for f in (file, reference_file) if f is not None])

    with workdir() as work:
        folder = work / "test_set"
        stream_pair(file, reference_file, folder, source_name, reference_name)
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
                    "notes": [],
                },
                n_sentences=len(test_set.sources),
                has_references=test_set.references is not None,
            )

        return store_and_create(user, folder, relative_files(folder), build_row)


def delete_upload(user, upload) -> None:
    """Remove an upload from the owner's library: its files, its row, its project attachments."""
    if upload.owner_id != user.pk:
        raise PermissionDenied("Only the person who uploaded this can delete it.")
    prefix, names = upload.storage_prefix, list(upload.files)
    try:
        upload.delete()
    except ProtectedError:
        raise ValidationError("Runs still use this upload; delete them first.") from None
    transaction.on_commit(lambda: delete_stored(prefix, names))


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
