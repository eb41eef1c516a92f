"""Validation of uploaded files, before anything is kept: archive safety, model directories, corpora, test sets.

Everything here works on local files (the services stream uploads into a fresh temporary folder first) and
raises :class:`UploadRefused` with a message for the person who uploaded. Nothing here touches the database or
the storage backend; :mod:`projects.services` does that.

Archive rules: ``.zip``, ``.tar.gz`` / ``.tgz`` (and plain ``.tar``). Entries with an absolute path, a ``..``
part, links (symbolic or hard), devices and other special files are refused, as are more than ``max_files``
files or more than ``max_bytes`` unpacked bytes. The declared sizes are checked before anything is unpacked,
and bytes are counted again while unpacking (a zip can lie about its sizes). Pickle-based weight files are
refused from the archive listing, before unpacking.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.core.exceptions import ValidationError

from analysis.engine import formats
from analysis.engine.modeldir import (
    CONVERT_HINT,
    PICKLE_SUFFIXES,
    ModelDirError,
    ModelInfo,
    inspect_model_dir,
    read_safetensors_header,
)

COPY_CHUNK = 1 << 20
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
# What a model upload keeps: config, weights and tokenizer files, flat in the model folder. Anything else
# (Python code, which we would never run, scripts, nested archives) is refused, so the library holds only what
# a model needs; harmless extras that model folders often carry are ignored and reported. One rule for both
# routes: see model_file_rule.
MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".txt", ".model")
REPOSITORY_FILES = frozenset({".gitattributes", ".gitignore"})
DOCUMENT_SUFFIXES = (".md",)  # README.md and other model cards
DOCUMENT_PREFIXES = ("LICENSE", "NOTICE")
# sentence-transformers' own files and module folders (1_Pooling/, 2_Normalize/): the engine loads the
# transformer model only
SENTENCE_TRANSFORMERS_FILES = frozenset({"modules.json", "config_sentence_transformers.json",
                                         "sentence_bert_config.json"})
SENTENCE_TRANSFORMERS_MODULE = re.compile(r"^\d+_[A-Za-z]+$")
# Configs that name custom code (auto_map): it would only run with trust_remote_code, which is never on here.
REMOTE_CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")
# Archive clutter from desktop archivers: skipped silently, not stored.
IGNORED_ARCHIVE_PREFIXES = ("__MACOSX/",)
IGNORED_ARCHIVE_NAMES = (".DS_Store",)


class UploadRefused(ValidationError):
    """An upload is refused; ``message`` says which file and what is wrong. ``code`` is one of: ``archive``,
    ``model``, ``corpus``, ``test_set``, ``quota``, ``too_large``, ``invalid``."""

    def __init__(self, message: str, *, code: str = "invalid"):
        super().__init__(message, code=code)

    def __str__(self) -> str:
        return self.message


def human_count(n: int) -> str:
    return f"{n:,}"


# ---------------------------------------------------------------------------------------------- file names


def pickle_refusal(name: str) -> str | None:
    """The refusal message for a pickle-based weight file, or None if ``name`` is not one."""
    if name.lower().endswith(PICKLE_SUFFIXES):
        return (
            f"{name}: pickle-based weight files (.bin, .pt, .pth, .pkl, .ckpt) are refused because loading them "
            f"unpickles, which can run arbitrary code. Only safetensors weights are accepted; {CONVERT_HINT}"
        )
    return None


def archive_kind(filename: str) -> str | None:
    """'zip' or 'tar' by the file name, or None for a file that is not an archive."""
    lowered = filename.lower()
    if lowered.endswith(".zip"):
        return "zip"
    if lowered.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    return None


def model_file_rule(path: str) -> str | None:
    """The rule for one file of a model upload, sent separately or inside an archive; ``path`` is relative to
    the model folder. Returns None to keep the file, or why it is ignored (not stored, reported in the upload's
    notes); raises :class:`UploadRefused` for a file that is refused."""
    if message := pickle_refusal(path):
        raise UploadRefused(message, code="model")
    parts = PurePosixPath(path).parts
    name = parts[-1]
    if (len(parts) > 1 and SENTENCE_TRANSFORMERS_MODULE.match(parts[0])) or path in SENTENCE_TRANSFORMERS_FILES:
        return "sentence-transformers configuration, not part of the transformer model"
    if (name in REPOSITORY_FILES or name.lower().endswith(DOCUMENT_SUFFIXES)
            or name.upper().startswith(DOCUMENT_PREFIXES)):
        return "documentation or repository metadata, not needed to load the model"
    if len(parts) > 1:
        raise UploadRefused(f"{path}: model files must sit together in one folder (no subfolders)", code="model")
    if not name.lower().endswith(MODEL_FILE_SUFFIXES):
        raise UploadRefused(
            f"{path}: not a model file; send config.json, *.safetensors weights and the tokenizer files "
            f"({', '.join(MODEL_FILE_SUFFIXES)}), or one .zip / .tar.gz of the model folder", code="model")
    return None


def ignored_note(ignored: dict[str, str]) -> str | None:
    """One sentence for the upload's notes listing the files that were ignored, by reason."""
    if not ignored:
        return None
    by_reason: dict[str, list[str]] = {}
    for path, reason in sorted(ignored.items()):
        by_reason.setdefault(reason, []).append(path)
    return "Not stored: " + "; ".join(f"{', '.join(paths)} ({reason})" for reason, paths in by_reason.items()) + "."


def check_model_file_names(names: list[str]) -> dict[str, str]:
    """Separate-file model uploads: flat names, no duplicates, each file by :func:`model_file_rule`, and a
    config.json among the kept ones. Returns the ignored names with the reason."""
    if not names:
        raise UploadRefused("no files were sent", code="model")
    seen = set()
    ignored = {}
    for name in names:
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise UploadRefused(f"{name}: file names must not contain folders", code="model")
        if name in seen:
            raise UploadRefused(f"{name} was sent twice", code="model")
        seen.add(name)
        if (reason := model_file_rule(name)) is not None:
            ignored[name] = reason
    if "config.json" not in seen:
        raise UploadRefused("config.json is missing: send it together with the weights and tokenizer files",
                            code="model")
    return ignored


def safe_relative_path(name: str, archive_name: str) -> PurePosixPath | None:
    """The entry's path inside the extraction folder, or None for the archive's root entry.
    Refuses absolute paths and ``..``; backslashes count as separators (archives made on Windows)."""
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised):
        raise UploadRefused(f"{archive_name}: archive entry {name!r} is an absolute path; entries must be relative",
                            code="archive")
    parts = [part for part in normalised.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UploadRefused(f"{archive_name}: archive entry {name!r} points outside the archive (it contains '..')",
                            code="archive")
    if any("\x00" in part for part in parts):
        raise UploadRefused(f"{archive_name}: archive entry {name!r} has a NUL byte in its name", code="archive")
    return PurePosixPath(*parts) if parts else None


# ---------------------------------------------------------------------------------------------- archives


@dataclass
class _Entry:
    path: PurePosixPath
    is_dir: bool
    declared_size: int
    handle: object  # ZipInfo or TarInfo


@dataclass
class ExtractedArchive:
    root: Path
    files: list[str]
    total_bytes: int
    ignored: dict[str, str] = field(default_factory=dict)  # entry path -> why it was not unpacked


def _ignored(path: PurePosixPath) -> bool:
    text = path.as_posix() + "/"
    return text.startswith(IGNORED_ARCHIVE_PREFIXES) or path.name in IGNORED_ARCHIVE_NAMES


def _zip_entries(archive: zipfile.ZipFile, archive_name: str, max_files: int) -> list[_Entry]:
    entries = []
    for info in archive.infolist():
        path = safe_relative_path(info.filename, archive_name)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UploadRefused(f"{archive_name}: archive entry {info.filename!r} is a symbolic link; links are not "
                                "accepted", code="archive")
        if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UploadRefused(f"{archive_name}: archive entry {info.filename!r} is not a regular file",
                                code="archive")
        if info.flag_bits & 0x1:
            raise UploadRefused(f"{archive_name}: archive entry {info.filename!r} is encrypted", code="archive")
        if path is None or _ignored(path):
            continue
        entries.append(_Entry(path, info.is_dir(), 0 if info.is_dir() else info.file_size, info))
        _check_file_count(entries, archive_name, max_files)
    return entries


def _tar_entries(archive: tarfile.TarFile, archive_name: str, max_files: int) -> list[_Entry]:
    entries = []
    while (member := archive.next()) is not None:
        path = safe_relative_path(member.name, archive_name)
        if member.issym() or member.islnk():
            kind = "symbolic link" if member.issym() else "hard link"
            raise UploadRefused(f"{archive_name}: archive entry {member.name!r} is a {kind}; links are not accepted",
                                code="archive")
        if not (member.isreg() or member.isdir()):
            raise UploadRefused(f"{archive_name}: archive entry {member.name!r} is a device or special file; only "
                                "regular files and folders are accepted", code="archive")
        if path is None or _ignored(path):
            continue
        entries.append(_Entry(path, member.isdir(), 0 if member.isdir() else member.size, member))
        _check_file_count(entries, archive_name, max_files)
    return entries


def _check_file_count(entries: list[_Entry], archive_name: str, max_files: int) -> None:
    n_files = sum(1 for entry in entries if not entry.is_dir)
    if n_files > max_files:
        raise UploadRefused(
            f"{archive_name}: the archive holds more than {human_count(max_files)} files; the limit is "
            f"{human_count(max_files)}", code="archive")


def _too_big(archive_name: str, max_bytes: int, quota_left: int | None) -> UploadRefused:
    if quota_left is not None and quota_left < max_bytes:
        return UploadRefused(
            f"{archive_name}: the archive unpacks to more than the {human_count(quota_left)} bytes left in your "
            "storage quota. Delete uploads you no longer need, or ask an administrator for a larger quota.",
            code="quota")
    return UploadRefused(
        f"{archive_name}: the archive unpacks to more than {human_count(max_bytes)} bytes; the limit is "
        f"{human_count(max_bytes)} bytes", code="archive")


def _inside_top_folder(entries: list[_Entry]) -> PurePosixPath | None:
    """The one top-level folder every file sits in (an archive of the model folder itself), or None."""
    files = [entry.path for entry in entries if not entry.is_dir]
    tops = {path.parts[0] for path in files}
    if len(tops) == 1 and all(len(path.parts) > 1 for path in files):
        return PurePosixPath(tops.pop())
    return None


def extract_archive(archive_path: Path, destination: Path, *, archive_name: str, max_files: int,
                    max_bytes: int, quota_left: int | None = None, rule=None) -> ExtractedArchive:
    """Unpack a zip or tar archive into ``destination`` (a fresh, empty folder), safely (see module doc).

    Unpacking stops as soon as it passes ``min(max_bytes, quota_left)`` bytes. ``rule(path)`` (e.g.
    :func:`model_file_rule`), given each file's path inside the archive's top folder, may refuse it (raise),
    keep it (None) or ignore it (a reason): all of that is decided from the listing, before unpacking."""
    kind = archive_kind(archive_name)
    destination.mkdir(parents=True, exist_ok=True)
    if any(destination.iterdir()):
        raise ValueError("extract_archive needs an empty destination folder")
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive_path) as archive:
                entries = _zip_entries(archive, archive_name, max_files)
                return _unpack(entries, lambda e: archive.open(e.handle), destination, archive_name, max_bytes,
                               quota_left, rule)
        if kind == "tar":
            with tarfile.open(archive_path, mode="r:*") as archive:
                entries = _tar_entries(archive, archive_name, max_files)
                return _unpack(entries, lambda e: archive.extractfile(e.handle), destination, archive_name,
                               max_bytes, quota_left, rule)
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError,
            NotImplementedError) as error:
        raise UploadRefused(f"{archive_name}: not a readable {kind} archive ({error})", code="archive") from None
    raise UploadRefused(f"{archive_name}: not an archive; send a .zip or .tar.gz", code="archive")


def _apply_rule(entries: list[_Entry], archive_name: str, rule) -> tuple[list[_Entry], dict[str, str]]:
    if rule is None:
        return entries, {}
    top = _inside_top_folder(entries)
    kept, ignored = [], {}
    for entry in entries:
        if entry.is_dir:
            continue  # folders are made for the files they hold
        inner = entry.path.relative_to(top) if top is not None else entry.path
        try:
            reason = rule(inner.as_posix())
        except UploadRefused as error:
            raise UploadRefused(f"{archive_name}: {error.message}", code=error.code) from None
        if reason is None:
            kept.append(entry)
        else:
            ignored[entry.path.as_posix()] = reason
    return kept, ignored


def _unpack(entries: list[_Entry], open_entry, destination: Path, archive_name: str, max_bytes: int,
            quota_left: int | None = None, rule=None) -> ExtractedArchive:
    for entry in entries:
        if not entry.is_dir and (message := pickle_refusal(entry.path.as_posix())):
            raise UploadRefused(f"{archive_name}: {message}", code="model")
    entries, ignored = _apply_rule(entries, archive_name, rule)
    limit = max_bytes if quota_left is None else min(max_bytes, quota_left)
    if sum(entry.declared_size for entry in entries) > limit:
        raise _too_big(archive_name, max_bytes, quota_left)
    written_total = 0
    files = []
    seen: set[PurePosixPath] = set()
    for entry in entries:
        target = destination.joinpath(*entry.path.parts)
        if entry.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        if entry.path in seen:
            raise UploadRefused(f"{archive_name}: archive entry {entry.path.as_posix()!r} appears twice",
                                code="archive")
        seen.add(entry.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = open_entry(entry)
        written = 0
        with source, open(target, "xb") as sink:  # "x": never write through something already there
            while chunk := source.read(COPY_CHUNK):
                written += len(chunk)
                written_total += len(chunk)
                if written > entry.declared_size:  # the entry lies about its size
                    raise _too_big(archive_name, max_bytes, None)
                if written_total > limit:
                    raise _too_big(archive_name, max_bytes, quota_left)
                sink.write(chunk)
        files.append(entry.path.as_posix())
    return ExtractedArchive(root=destination, files=files, total_bytes=written_total, ignored=ignored)


# ---------------------------------------------------------------------------------------------- models


def find_model_root(folder: Path) -> Path:
    """The folder that holds config.json: the top of the upload, or a single top-level folder inside it (an
    archive made by zipping the model folder itself)."""
    if (folder / "config.json").is_file():
        return folder
    children = [child for child in folder.iterdir()]
    if len(children) == 1 and children[0].is_dir() and (children[0] / "config.json").is_file():
        return children[0]
    raise UploadRefused(
        "config.json is missing: the archive must hold the model folder's files (config.json, *.safetensors, "
        "tokenizer files) at its top, or inside one top-level folder", code="model")


# A real header lists each tensor in ~150 bytes: 16 MiB describe 100,000 tensors, far more than any model has.
MAX_SAFETENSORS_HEADER_BYTES = 16 << 20
# Bits per element of each safetensors dtype (the F4/F6 ones are packed below a byte).
SAFETENSORS_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "F4": 4, "F6_E2M3": 6,
    "F6_E3M2": 6,
}
MAX_INTEGER = 2**31 - 1  # the database's integer columns (layers, hidden size)


def check_safetensors(path: Path, name: str) -> int:
    """Check a safetensors file's header against its bytes; returns its parameter count.

    Refused, naming the file and the tensor: a header over :data:`MAX_SAFETENSORS_HEADER_BYTES`, no tensor, an
    unknown dtype, a shape that is not a list of non-negative integers, ``data_offsets`` outside the data or
    overlapping another tensor's, and a byte range whose length is not shape product × dtype size."""
    header, data_size = _safetensors_header(path, name)
    tensors = {key: entry for key, entry in header.items() if key != "__metadata__"}
    if not tensors:
        raise UploadRefused(f"{name}: the safetensors file holds no tensors", code="model")
    ranges = []
    n_parameters = 0
    for tensor, entry in tensors.items():
        begin, end, elements = _tensor_extent(entry, tensor, name, data_size)
        ranges.append((begin, end, tensor))
        n_parameters += elements
    _refuse_overlaps(ranges, name)
    return n_parameters


def _safetensors_header(path: Path, name: str) -> tuple[dict, int]:
    """(the header, the number of data bytes after it), refusing a header over the size limit or unreadable."""
    file_size = path.stat().st_size
    with open(path, "rb") as handle:
        raw_length = handle.read(8)
    if len(raw_length) == 8 and int.from_bytes(raw_length, "little") > MAX_SAFETENSORS_HEADER_BYTES:
        raise UploadRefused(
            f"{name}: the safetensors header claims {int.from_bytes(raw_length, 'little'):,} bytes; the limit is "
            f"{MAX_SAFETENSORS_HEADER_BYTES:,}", code="model")
    try:
        header = read_safetensors_header(path)
    except ModelDirError as error:
        raise UploadRefused(str(error).replace(path.name, name, 1), code="model") from None
    return header, file_size - 8 - int.from_bytes(raw_length, "little")


def _tensor_extent(entry, tensor: str, name: str, data_size: int) -> tuple[int, int, int]:
    """(begin, end, number of elements) of one tensor's header entry, checked against the data it claims."""
    def bad(reason: str) -> UploadRefused:
        return UploadRefused(f"{name}: tensor {tensor!r} {reason}", code="model")

    if not isinstance(entry, dict):
        raise bad("has no dtype, shape and data_offsets")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in SAFETENSORS_DTYPE_BITS:
        raise bad(f"has an unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad("has no valid shape (a list of non-negative integers)")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise bad("has no valid data_offsets ([begin, end] with 0 ≤ begin ≤ end)")
    begin, end = offsets
    if end > data_size:
        raise bad(f"has data_offsets [{begin:,}, {end:,}] past the end of the file's {data_size:,} data bytes")
    elements = math.prod(shape)
    bits = elements * SAFETENSORS_DTYPE_BITS[dtype]
    if bits != (end - begin) * 8:
        raise bad(f"has shape {json.dumps(shape)} of {dtype}, which needs {(bits + 7) // 8:,} bytes, but its "
                  f"data_offsets hold {end - begin:,} bytes")
    return begin, end, elements


def _refuse_overlaps(ranges: list[tuple[int, int, str]], name: str) -> None:
    """Refuse tensors whose byte ranges overlap (sorts ``ranges`` in place)."""
    ranges.sort()
    for (_, previous_end, previous), (begin, _, tensor) in zip(ranges, ranges[1:]):
        if begin < previous_end:
            raise UploadRefused(f"{name}: tensors {previous!r} and {tensor!r} overlap in the file", code="model")


def refuse_remote_code(folder: Path) -> None:
    """Refuse a model whose configs name custom code (``auto_map``): it runs only with trust_remote_code,
    which is never on here, so such a model could not be loaded as its authors meant."""
    for name in REMOTE_CODE_CONFIGS:
        path = folder / name
        if not path.is_file():
            continue
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # config.json's own errors are reported by the engine's inspection
        if isinstance(config, dict) and config.get("auto_map"):
            raise UploadRefused(
                f"{name}: auto_map names custom model code, which is never run here (trust_remote_code is off); "
                "upload a model whose architecture is built into transformers, saved without auto_map",
                code="model")


def inspect_model(folder: Path) -> ModelInfo:
    """Check the weights' headers and refuse custom code, then inspect the model folder with the engine;
    refusals become
    :class:`UploadRefused`. Numbers the database keeps must fit its columns: the parameter count (a big
    integer) is bounded by the weights' real bytes once :func:`check_safetensors` has passed; the config's sizes
    are checked here."""
    for path in sorted(folder.rglob("*.safetensors")):
        check_safetensors(path, path.relative_to(folder).as_posix())
    refuse_remote_code(folder)
    try:
        info = inspect_model_dir(folder)
    except ModelDirError as error:
        raise UploadRefused(str(error), code="model") from None
    for field_name, value in (("the number of layers", info.n_layers), ("the hidden size", info.hidden_size),
                              ("the number of decoder layers", info.n_decoder_layers)):
        if value is not None and not 0 <= value <= MAX_INTEGER:
            raise UploadRefused(f"config.json: {field_name} is {value:,}, which is not a real model's",
                                code="model")
    return info


# ---------------------------------------------------------------------------------------------- corpora


def check_label_column(label_column: str | None) -> str | None:
    """The one check of a CoNLL-U label column choice (form and API): the engine's, as an upload refusal."""
    try:
        return formats.check_label_column(label_column)
    except formats.CorpusError as error:
        raise UploadRefused(f"Label column: {error}", code="corpus") from None


def read_corpus(fmt: str, path: Path, *, filename: str, label_column: str | None = "upos",
                label_path: Path | None = None, label_filename: str | None = None,
                max_sentence_words: int | None = formats.DEFAULT_MAX_SENTENCE_WORDS) -> formats.Corpus:
    """Check an uploaded corpus file (CoNLL-U, or NeuroX plain ``.word`` + optional ``.label``) with the engine's
    :func:`formats.read_corpus`; its refusals become :class:`UploadRefused`.

    Sentences over ``max_sentence_words`` (None: no limit) are kept, with a note in ``corpus.warnings``:
    extraction windows them, so refusing the file would refuse a corpus the engine reads."""
    try:
        return formats.read_corpus(fmt, path, filename=filename, label_column=label_column, label_source=label_path,
                                   label_filename=label_filename, note_sentences_over=max_sentence_words)
    except formats.CorpusError as error:
        raise UploadRefused(str(error), code="corpus") from None


def read_test_set(path: Path, *, filename: str, reference_path: Path | None = None,
                  reference_filename: str | None = None) -> formats.TestSet:
    try:
        return formats.read_test_set(path, reference_path, source_filename=filename,
                                     reference_filename=reference_filename)
    except formats.CorpusError as error:
        raise UploadRefused(str(error), code="test_set") from None


def remove_tree(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
