"""Upload services: every refusal says what is wrong and leaves no file, no row and no quota used; valid
models (zip, tar.gz, separate files) and the real UD corpus are kept with their facts; big files stream."""

from __future__ import annotations

import io
import json
import shutil
import stat
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import TemporaryUploadedFile

from projects import selectors, services
from projects.models import CorpusUpload, ModelUpload, TestSetUpload
from tests.assets import UD_DEV, ud_dev
from tests.support.upload_files import folder_entries, refused, tar_gz_of, uploaded, zip_of

pytestmark = pytest.mark.django_db



def model_files(folder: Path, **replace: bytes) -> list:
    entries = {**folder_entries(folder), **replace}
    return [uploaded(name, data) for name, data in entries.items()]


# ---------------------------------------------------------------------------------------------- models: kept


@pytest.mark.parametrize("packing", ["zip", "tar.gz", "zip-with-top-folder", "separate"])
def test_model_upload_is_kept_with_its_facts(alice, tiny_model_dir, storage_root, packing):
    entries = folder_entries(tiny_model_dir)
    if packing == "zip":
        files = [uploaded("tiny.zip", zip_of(entries))]
    elif packing == "tar.gz":
        files = [uploaded("tiny.tar.gz", tar_gz_of(entries))]
    elif packing == "zip-with-top-folder":
        files = [uploaded("tiny.zip", zip_of(entries, prefix="tiny-bert/"))]
    else:
        files = model_files(tiny_model_dir)

    upload = services.create_model_upload(alice, files=files, name="Tiny BERT")

    row = ModelUpload.objects.get()
    assert row == upload and row.owner == alice and row.name == "Tiny BERT"
    assert (row.model_type, row.architecture, row.model_kind) == ("bert", "BertModel", "encoder")
    assert (row.n_layers, row.hidden_size) == (2, 16)
    assert row.n_parameters > 490_000
    assert set(row.files) == set(entries)  # config, weights and tokenizer files, at the top of the prefix
    for name in entries:
        stored = storage_root / row.storage_prefix / name
        assert stored.read_bytes() == entries[name]
    assert row.size_bytes == sum(len(data) for data in entries.values())
    assert selectors.storage_used_by(alice) == row.size_bytes
    assert row.metadata["has_fast_tokenizer"] is True
    assert row.storage_prefix.startswith(f"uploads/{alice.pk}/")
    assert services.local_folder(row) == storage_root / row.storage_prefix


def test_same_model_has_same_sha256_however_packed(alice, tiny_model_dir, storage_root):
    entries = folder_entries(tiny_model_dir)
    a = services.create_model_upload(alice, files=[uploaded("m.zip", zip_of(entries))])
    b = services.create_model_upload(alice, files=[uploaded("m.tar.gz", tar_gz_of(entries, prefix="m/"))])
    assert a.sha256 == b.sha256 and a.storage_prefix != b.storage_prefix


# ---------------------------------------------------------------------------------------------- models: refused


def test_pickle_weights_refused_as_separate_files(alice, tiny_model_dir, assert_nothing_left):
    files = model_files(tiny_model_dir) + [uploaded("pytorch_model.bin", b"\x80\x04not really a pickle")]
    message = refused(lambda: services.create_model_upload(alice, files=files))
    assert "pytorch_model.bin" in message and "arbitrary code" in message and "safe_serialization=True" in message
    assert_nothing_left(alice)


def test_pickle_weights_refused_inside_archive(alice, tiny_model_dir, assert_nothing_left):
    entries = {**folder_entries(tiny_model_dir), "model.pt": b"x"}
    message = refused(lambda: services.create_model_upload(alice, files=[uploaded("m.tar.gz", tar_gz_of(entries))]))
    assert message.startswith("m.tar.gz: model.pt: pickle-based weight files")
    assert_nothing_left(alice)


def test_unknown_model_type_refused(alice, tiny_model_dir, assert_nothing_left):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["model_type"] = "my-secret-arch"
    files = model_files(tiny_model_dir, **{"config.json": json.dumps(config).encode()})
    message = refused(lambda: services.create_model_upload(alice, files=files))
    assert "model_type 'my-secret-arch' is not an architecture that the installed transformers knows" in message
    assert_nothing_left(alice)


def test_bad_config_json_refused(alice, tiny_model_dir, assert_nothing_left):
    files = model_files(tiny_model_dir, **{"config.json": b'{"model_type": "bert",'})
    message = refused(lambda: services.create_model_upload(alice, files=[uploaded("m.zip", zip_of(
        {f.name: f.read() for f in files}))]))
    assert message.startswith("config.json is not valid JSON")
    assert_nothing_left(alice)


def test_missing_safetensors_refused(alice, tiny_model_dir, assert_nothing_left):
    files = [f for f in model_files(tiny_model_dir) if not f.name.endswith(".safetensors")]
    message = refused(lambda: services.create_model_upload(alice, files=files))
    assert "no *.safetensors weights" in message
    assert_nothing_left(alice)


def test_python_file_refused_as_separate_file(alice, tiny_model_dir, assert_nothing_left):
    files = model_files(tiny_model_dir) + [uploaded("modeling_evil.py", b"import os")]
    assert "modeling_evil.py: not a model file" in refused(lambda: services.create_model_upload(alice, files=files))
    assert_nothing_left(alice)


def _zip_with(name: str, data: bytes = b"x", *, mode: int | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", b"{}")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        archive.writestr(info, data)
    return buffer.getvalue()


def _tar_with(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        config = tarfile.TarInfo("config.json")
        config.size = 2
        archive.addfile(config, io.BytesIO(b"{}"))
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _tar_entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize("archive_name, data, expected", [
    ("m.zip", _zip_with("../x"), "m.zip: archive entry '../x' points outside the archive (it contains '..')"),
    ("m.zip", _zip_with("a/../../x"), "archive entry 'a/../../x' points outside the archive"),
    ("m.zip", _zip_with("/etc/passwd"), "m.zip: archive entry '/etc/passwd' is an absolute path"),
    ("m.zip", _zip_with("link", b"/etc/passwd", mode=stat.S_IFLNK | 0o777),
     "m.zip: archive entry 'link' is a symbolic link; links are not accepted"),
    ("m.tar.gz", _tar_with(_tar_entry("../x"), b"x"), "archive entry '../x' points outside the archive"),
    ("m.tar.gz", _tar_with(_tar_entry("/abs/x"), b"x"), "archive entry '/abs/x' is an absolute path"),
    ("m.tar.gz", _tar_with(_tar_entry("tokenizer.json", tarfile.SYMTYPE, "/etc/passwd")),
     "m.tar.gz: archive entry 'tokenizer.json' is a symbolic link; links are not accepted"),
    ("m.tar.gz", _tar_with(_tar_entry("vocab.txt", tarfile.LNKTYPE, "config.json")),
     "archive entry 'vocab.txt' is a hard link"),
    ("m.tar.gz", _tar_with(_tar_entry("dev", tarfile.CHRTYPE)), "archive entry 'dev' is a device or special file"),
    ("m.zip", b"PK\x03\x04 this is no zip", "m.zip: not a readable zip archive"),
])
def test_unsafe_archive_refused(alice, assert_nothing_left, archive_name, data, expected):
    message = refused(lambda: services.create_model_upload(alice, files=[uploaded(archive_name, data)]))
    assert expected in message
    assert_nothing_left(alice)


def test_archive_with_too_many_files_refused(alice, settings, assert_nothing_left):
    settings.NEUROX_MAX_ARCHIVE_FILES = 3
    data = zip_of({f"f{i}.json": b"{}" for i in range(4)})
    message = refused(lambda: services.create_model_upload(alice, files=[uploaded("m.zip", data)]))
    assert message == "m.zip: the archive holds more than 3 files; the limit is 3"
    assert_nothing_left(alice)


@pytest.mark.parametrize("make", [zip_of, tar_gz_of])
def test_archive_too_big_unpacked_refused(alice, settings, assert_nothing_left, make):
    settings.NEUROX_MAX_UNPACKED_BYTES = 10_000
    data = make({"config.json": b"{}", "model.safetensors": b"\0" * 20_000})  # compresses to ~100 bytes
    assert len(data) < 1_000
    message = refused(lambda: services.create_model_upload(alice, files=[uploaded("m.zip" if make is zip_of else
                                                                                  "m.tgz", data)]))
    assert "the archive unpacks to more than 10,000 bytes; the limit is 10,000 bytes" in message
    assert_nothing_left(alice)


def test_quota_checked_before_anything_is_written(alice, assert_nothing_left):
    alice.storage_quota_bytes = 1_000
    alice.save()

    class WatchedUpload:
        name, size = "corpus.conllu", 5_000
        read_chunks = False

        def chunks(self):
            WatchedUpload.read_chunks = True
            yield b"x" * 5_000

    message = refused(lambda: services.create_corpus_upload(alice, file=WatchedUpload()))
    assert message.startswith("This upload needs 5.0 KB but only 1.0 KB of your 1.0 KB storage quota is left")
    assert WatchedUpload.read_chunks is False
    assert_nothing_left(alice)


def test_quota_checked_again_on_unpacked_size(alice, tiny_model_dir, assert_nothing_left):
    entries = folder_entries(tiny_model_dir)
    archive = zip_of(entries)
    alice.storage_quota_bytes = len(archive) + 10  # the archive fits; the unpacked model does not
    alice.save()
    assert sum(map(len, entries.values())) > alice.storage_quota_bytes
    message = refused(lambda: services.create_model_upload(alice, files=[uploaded("m.zip", archive)]))
    assert "storage quota" in message
    assert_nothing_left(alice)


def test_quota_counts_existing_uploads(alice, storage_root):
    alice.storage_quota_bytes = 30
    alice.save()
    services.create_test_set_upload(alice, file=uploaded("a.txt", b"one sentence .\n" * 2))  # 30 bytes
    assert selectors.storage_used_by(alice) == 30
    message = refused(lambda: services.create_test_set_upload(alice, file=uploaded("b.txt", b"x\n")))
    assert "only 0 bytes of your 30 bytes storage quota is left" in message
    assert TestSetUpload.objects.count() == 1


def test_failure_while_storing_removes_copied_files(alice, tiny_model_dir, storage_root, monkeypatch):
    """If the row cannot be created after the files went to storage, the files go too."""
    def broken_save(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ModelUpload, "save", broken_save)
    with pytest.raises(RuntimeError):
        services.create_model_upload(alice, files=model_files(tiny_model_dir))
    assert [p for p in storage_root.rglob("*") if p.is_file()] == []


# ---------------------------------------------------------------------------------------------- corpora


def test_real_ud_corpus_is_kept(alice, storage_root):
    with open(ud_dev(), "rb") as handle:
        upload = services.create_corpus_upload(alice, file=File(handle, name=UD_DEV.name), label_column="upos")
    row = CorpusUpload.objects.get()
    assert row == upload
    assert (row.format, row.label_column, row.n_sentences, row.n_words, row.n_labels) == (
        "conllu", "upos", 2001, 25147, 17)
    assert row.sha256 == "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6"
    assert row.metadata["labels"]["NOUN"] == 4210
    assert row.size_bytes == UD_DEV.stat().st_size == selectors.storage_used_by(alice)
    assert (storage_root / row.storage_prefix / UD_DEV.name).stat().st_size == UD_DEV.stat().st_size


def test_plain_corpus_is_kept(alice, storage_root):
    upload = services.create_corpus_upload(
        alice, format="plain", file=uploaded("toy.word", b"The cat sat\nDogs bark\n"),
        label_file=uploaded("toy.label", b"DET NOUN VERB\nNOUN VERB\n"),
    )
    assert (upload.n_sentences, upload.n_words, upload.n_labels, upload.label_column) == (2, 5, 3, "label")
    assert set(upload.files) == {"toy.word", "toy.label"}
    assert upload.metadata["label_file"] == "toy.label"


def test_corpus_count_mismatch_names_the_line(alice, assert_nothing_left):
    words = b"a b\n" * 16 + b" ".join([b"w"] * 12) + b"\n"
    labels = b"X Y\n" * 16 + b" ".join([b"L"] * 11) + b"\n"
    message = refused(lambda: services.create_corpus_upload(
        alice, format="plain", file=uploaded("c.word", words), label_file=uploaded("c.label", labels)))
    assert message == "c.label, line 17: count mismatch on line 17: 12 words, 11 labels"
    assert_nothing_left(alice)


def test_corpus_not_utf8_names_the_byte(alice, assert_nothing_left):
    data = "1\tcafé\tcafé\tNOUN\tNN\t_\t0\troot\t_\t_\n".encode("latin-1")
    message = refused(lambda: services.create_corpus_upload(alice, file=uploaded("c.conllu", data)))
    assert message == "c.conllu, line 1: not UTF-8 at byte 5 (save the file as UTF-8)"
    assert_nothing_left(alice)


def test_corpus_empty_file(alice, assert_nothing_left):
    assert refused(lambda: services.create_corpus_upload(alice, file=uploaded("c.conllu", b""))) == \
        "c.conllu: empty file"
    assert_nothing_left(alice)


def test_corpus_with_an_over_long_sentence_is_kept_with_a_note(alice, settings, storage_root):
    settings.NEUROX_MAX_SENTENCE_WORDS = 5
    upload = services.create_corpus_upload(alice, format="plain", file=uploaded("c.word", b"a b\na b c d e f\n"))
    assert (upload.n_sentences, upload.n_words) == (2, 8)
    assert upload.metadata["notes"] == [
        "c.word: 1 sentence(s) have more than 5 words (sentence 2: 6 words). They are kept: extraction reads a "
        "sentence longer than the model's input in overlapping windows, so no word is lost. Lengths like these can "
        "mean the file is not split into sentences."]
    conllu = "".join(f"{i}\tw{i}\tw\tX\tX\t_\t0\troot\t_\t_\n" for i in range(1, 7)).encode()
    one_word = conllu.splitlines(True)[0]
    upload = services.create_corpus_upload(alice, file=uploaded("c.conllu", conllu + b"\n" + one_word))
    assert upload.n_words == 7 and "1 sentence(s) have more than 5 words (sentence 1: 6 words)" in \
        upload.metadata["notes"][0]


def test_corpus_unknown_label_column(alice, assert_nothing_left):
    message = refused(lambda: services.create_corpus_upload(
        alice, file=uploaded("c.conllu", b"1\ta\ta\tX\tX\t_\t0\troot\t_\t_\n"), label_column="lemma"))
    assert "unknown label column 'lemma'" in message
    assert_nothing_left(alice)


# ---------------------------------------------------------------------------------------------- test sets


def test_test_set_with_references_is_kept(alice, storage_root):
    upload = services.create_test_set_upload(
        alice, file=uploaded("src.txt", b"Hello .\nBye .\n"), reference_file=uploaded("ref.txt", b"Hallo .\nTschuess .\n"))
    assert (upload.n_sentences, upload.has_references) == (2, True)


def test_test_set_reference_mismatch_refused(alice, assert_nothing_left):
    message = refused(lambda: services.create_test_set_upload(
        alice, file=uploaded("src.txt", b"a\nb\nc\n"), reference_file=uploaded("ref.txt", b"x\ny\n")))
    assert message == ("ref.txt: reference file has 2 lines but source file src.txt has 3; "
                       "they must be line-aligned")
    assert_nothing_left(alice)



def test_companion_file_with_the_main_file_name_is_refused(alice, assert_nothing_left):
    message = refused(lambda: services.create_test_set_upload(
        alice, file=uploaded("a.txt", b"x\n"), reference_file=uploaded("a.txt", b"y\n")))
    assert message == "The source file and the reference file must have different names."
    message = refused(lambda: services.create_corpus_upload(
        alice, file=uploaded("c.word", b"a b\n"), format="plain", label_file=uploaded("c.word", b"X Y\n")))
    assert message == "The word file and the label file must have different names."
    assert_nothing_left(alice)


# ---------------------------------------------------------------------------------------------- deletion


def test_delete_upload_removes_files_and_quota(alice, storage_root, project, django_capture_on_commit_callbacks):
    upload = services.create_test_set_upload(alice, file=uploaded("s.txt", b"a\n"))
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_upload(alice, upload)
    assert TestSetUpload.objects.count() == 0
    assert [p for p in storage_root.rglob("*") if p.is_file()] == []
    assert selectors.storage_used_by(alice) == 0


# ---------------------------------------------------------------------------------------------- streaming


def test_large_model_upload_streams_without_holding_it_in_memory(alice, tiny_model_dir, storage_root, tmp_path):
    """A ~32 MB weights file goes from a temporary upload file to storage; Python's peak allocation during the
    service call stays a small fraction of it (chunks, not the whole file)."""
    from safetensors.numpy import save_file

    size = 32 * 1024 * 1024
    weights = tmp_path / "model.safetensors"
    save_file({"big.weight": np.zeros(size // 4, dtype=np.float32)}, str(weights))
    big = TemporaryUploadedFile("model.safetensors", "application/octet-stream", weights.stat().st_size, None)
    with open(weights, "rb") as source:
        shutil.copyfileobj(source, big.file)
    weights.unlink()
    files = [uploaded(name, (tiny_model_dir / name).read_bytes()) for name in ("config.json", "tokenizer.json",
                                                                              "vocab.txt")] + [big]
    services.create_model_upload(alice, files=model_files(tiny_model_dir))  # warm-up: one-time imports and caches
    tracemalloc.start()
    try:
        upload = services.create_model_upload(alice, files=files)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        big.close()
    assert upload.size_bytes > size
    assert default_storage.size(upload.storage_name("model.safetensors")) == big.size
    assert peak < 4 * 1024 * 1024, f"peak Python allocation {peak:,} bytes for a {big.size:,}-byte upload"
