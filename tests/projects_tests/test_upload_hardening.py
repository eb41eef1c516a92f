"""Issue #6, items 2–5, 8 and 11: hostile or odd uploads are refused with a message that names the file (and
the tensor or line), leave nothing behind, and are treated the same through the service, the form and the API."""

from __future__ import annotations

import json
import struct

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from projects import services
from projects.models import ModelUpload
from projects.uploads import MAX_SAFETENSORS_HEADER_BYTES
from tests.factories import UserFactory
from tests.support.upload_files import folder_entries, refused, tar_gz_of, uploaded, zip_of

pytestmark = pytest.mark.django_db



def safetensors(tensors: dict, data: bytes, *, header_bytes: int | None = None) -> bytes:
    """A safetensors file from a header dict (tensor → dtype/shape/data_offsets) and its data bytes; the
    header is padded with spaces (as the format allows) to ``header_bytes``."""
    header = json.dumps(tensors).encode()
    header += b" " * ((header_bytes or 0) - len(header))
    return struct.pack("<Q", len(header)) + header + data


def with_weights(tiny_model_dir, weights: bytes, **replace: bytes) -> list:
    entries = {**folder_entries(tiny_model_dir), "model.safetensors": weights, **replace}
    return [uploaded(name, data) for name, data in entries.items()]


# ---------------------------------------------------------------------------------------------- safetensors


HUGE_SHAPE = {"w": {"dtype": "F32", "shape": [10**12, 10**12], "data_offsets": [0, 16]}}
BAD_WEIGHTS = [
    ("huge shape", safetensors(HUGE_SHAPE, b"\0" * 16),
     "model.safetensors: tensor 'w' has shape [1000000000000, 1000000000000] of F32, which needs "
     "4,000,000,000,000,000,000,000,000 bytes, but its data_offsets hold 16 bytes"),
    ("offsets past the end", safetensors({"w": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}},
                                         b"\0" * 16),
     "model.safetensors: tensor 'w' has data_offsets [0, 400] past the end of the file's 16 data bytes"),
    ("no tensors", safetensors({"__metadata__": {"format": "pt"}}, b""),
     "model.safetensors: the safetensors file holds no tensors"),
    ("header too big", safetensors({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0",
                                   header_bytes=MAX_SAFETENSORS_HEADER_BYTES + 1),
     f"model.safetensors: the safetensors header claims {MAX_SAFETENSORS_HEADER_BYTES + 1:,} bytes; the limit is "
     f"{MAX_SAFETENSORS_HEADER_BYTES:,}"),
    ("size mismatch", safetensors({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16),
     "tensor 'w' has shape [4] of F16, which needs 8 bytes, but its data_offsets hold 16 bytes"),
    ("unknown dtype", safetensors({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, b"\0" * 16),
     "tensor 'w' has an unknown dtype 'F128'"),
    ("overlap", safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
     "model.safetensors: tensors 'a' and 'b' overlap in the file"),
]


@pytest.mark.parametrize("case, weights, expected", BAD_WEIGHTS, ids=[c[0] for c in BAD_WEIGHTS])
def test_safetensors_checked_against_its_bytes(alice, tiny_model_dir, assert_nothing_left, case, weights, expected):
    message = refused(lambda: services.create_model_upload(alice, files=with_weights(tiny_model_dir, weights)))
    assert expected in message
    assert_nothing_left(alice)


def test_huge_shape_refused_through_api_and_form(alice, tiny_model_dir, assert_nothing_left, client):
    """This one was a 500 (the parameter count overflowed the database column) on both routes."""
    weights = BAD_WEIGHTS[0][1]
    api = APIClient()
    api.force_authenticate(alice)
    response = api.post("/api/v1/uploads/models/", {"files": with_weights(tiny_model_dir, weights)},
                        format="multipart")
    assert response.status_code == 400
    assert "tensor 'w' has shape [1000000000000, 1000000000000]" in response.json()["detail"]
    client.force_login(alice)
    page = client.post(reverse("projects:upload", args=["model"]),
                       {"files": [uploaded("m.zip", zip_of({**folder_entries(tiny_model_dir),
                                                             "model.safetensors": weights}))]})
    assert page.status_code == 200 and "tensor &#x27;w&#x27; has shape" in page.content.decode()
    assert_nothing_left(alice)


def test_config_sizes_must_fit_the_database(alice, tiny_model_dir, assert_nothing_left):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["hidden_size"] = 10**20
    files = [uploaded(name, data) for name, data in
             {**folder_entries(tiny_model_dir), "config.json": json.dumps(config).encode()}.items()]
    message = refused(lambda: services.create_model_upload(alice, files=files))
    assert message == "config.json: the hidden size is 100,000,000,000,000,000,000, which is not a real model's"
    assert_nothing_left(alice)


def test_real_weights_still_pass_and_count_parameters(alice, tiny_model_dir, storage_root):
    upload = services.create_model_upload(alice, files=with_weights(
        tiny_model_dir, (tiny_model_dir / "model.safetensors").read_bytes()))
    assert ModelUpload.objects.get() == upload and upload.n_parameters > 490_000


# ---------------------------------------------------------------------------------------------- archive entries


@pytest.mark.parametrize("extra, data", [
    ("evil.py", b"import os; os.system('id')"), ("modeling_x.py", b"class X: pass"), ("run.sh", b"#!/bin/sh\nid\n"),
    ("inner.zip", zip_of({"evil.py": b"import os"})),
])
@pytest.mark.parametrize("packing", ["zip", "tar.gz", "separate"])
def test_code_and_nested_archives_refused_on_every_route(alice, tiny_model_dir, assert_nothing_left, extra, data,
                                                         packing):
    entries = {**folder_entries(tiny_model_dir), extra: data}
    if packing == "separate":
        files = [uploaded(name, content) for name, content in entries.items()]
        expected = f"{extra}: not a model file"
    else:
        archive = zip_of(entries) if packing == "zip" else tar_gz_of(entries, prefix="tiny/")
        files = [uploaded(f"m.{packing}", archive)]
        expected = f"m.{packing}: {extra}: not a model file"
    assert refused(lambda: services.create_model_upload(alice, files=files)).startswith(expected)
    assert_nothing_left(alice)


@pytest.mark.parametrize("packing", ["zip", "separate"])
def test_auto_map_config_refused(alice, tiny_model_dir, assert_nothing_left, packing):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_x.XModel"}
    entries = {**folder_entries(tiny_model_dir), "config.json": json.dumps(config).encode()}
    files = ([uploaded("m.zip", zip_of(entries))] if packing == "zip"
             else [uploaded(name, data) for name, data in entries.items()])
    message = refused(lambda: services.create_model_upload(alice, files=files))
    assert message.startswith("config.json: auto_map names custom model code, which is never run here")
    assert_nothing_left(alice)


HARMLESS = {".gitattributes": b"*.safetensors filter=lfs\n", "README.md": b"# A model\n", "modules.json": b"[]"}


@pytest.mark.parametrize("packing", ["zip", "zip-with-top-folder", "separate"])
def test_harmless_extras_are_ignored_and_reported_the_same_way(alice, tiny_model_dir, storage_root, packing):
    model = folder_entries(tiny_model_dir)
    if packing == "separate":
        files = [uploaded(name, data) for name, data in {**model, **HARMLESS}.items()]
        expected_ignored = set(HARMLESS)
    else:
        extras = {**HARMLESS, "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}'}
        prefix = "minilm/" if packing == "zip-with-top-folder" else ""
        files = [uploaded("m.zip", zip_of({**model, **extras}, prefix=prefix))]
        expected_ignored = {prefix + name for name in extras}

    upload = services.create_model_upload(alice, files=files)

    assert set(upload.files) == set(model)  # nothing else stored
    assert [p.name for p in storage_root.rglob("*") if p.is_file() and p.name in HARMLESS] == []
    assert set(upload.metadata["ignored"]) == expected_ignored
    note = next(n for n in upload.metadata["notes"] if n.startswith("Not stored: "))
    assert "(documentation or repository metadata, not needed to load the model)" in note
    assert "(sentence-transformers configuration, not part of the transformer model)" in note
    for name in expected_ignored:
        assert name in note


# ---------------------------------------------------------------------------------------------- quota while unpacking


def test_unpacking_stops_at_the_remaining_quota(alice, settings, assert_nothing_left):
    """A user with little quota left sent a small zip that unpacked to gigabytes before the refusal came: now
    its declared sizes are compared with the quota left before a byte is unpacked."""
    settings.NEUROX_MAX_UNPACKED_BYTES = 10**9
    alice.storage_quota_bytes = 5_000
    alice.save()
    archive = zip_of({"config.json": b"{}", "model.safetensors": b"\0" * 200_000})  # ~1 KB compressed
    assert len(archive) < 5_000
    message = refused(lambda: services.create_model_upload(alice, files=[uploaded("m.zip", archive)]))

    assert message.startswith("m.zip: the archive unpacks to more than the 5,000 bytes left in your storage quota")
    assert_nothing_left(alice)


# ---------------------------------------------------------------------------------------------- names and duplicates


def test_model_upload_is_named_after_the_model_and_duplicates_say_so(alice, tiny_model_dir, storage_root):
    entries = folder_entries(tiny_model_dir)
    first = services.create_model_upload(alice, files=[uploaded("model.zip", zip_of(entries, prefix="model/"))])
    assert first.name == f"BertModel · {first.n_parameters / 1000:.1f}K params"
    assert first.metadata["notes"] == []
    services.rename_upload(alice, first, name="Tiny BERT")

    second = services.create_model_upload(alice, files=[uploaded(n, d) for n, d in entries.items()])
    assert second.sha256 == first.sha256
    assert second.metadata["same_content_as"] == first.pk
    assert f"You uploaded the same content before as “Tiny BERT” on {first.created_at:%Y-%m-%d}." in \
        second.metadata["notes"]
    other = services.create_model_upload(UserFactory(), files=[uploaded("m.zip", zip_of(entries))])
    assert "same_content_as" not in other.metadata  # another person's library is not compared


def test_upload_rename_page(alice, storage_root, client):
    upload = services.create_test_set_upload(alice, file=uploaded("s.txt", b"a sentence .\n"))
    client.force_login(alice)
    url = reverse("projects:upload-edit", args=["test_set", upload.pk])
    assert 'name="name"' in client.get(url).content.decode()
    response = client.post(url, {"name": "  Held-out sentences ", "description": "from the news"})
    assert response.status_code == 302
    upload.refresh_from_db()
    assert (upload.name, upload.description) == ("Held-out sentences", "from the news")
    assert client.post(url, {"name": "   "}).status_code == 200
    upload.refresh_from_db()
    assert upload.name == "Held-out sentences"
    client.force_login(UserFactory())
    assert client.post(url, {"name": "Mine now"}).status_code == 404


# ---------------------------------------------------------------------------------------------- corpora and test sets


def test_label_column_checked_the_same_way_through_api_and_form(alice, assert_nothing_left, client):
    conllu = b"1\tThe\tthe\tDET\tDT\tDefinite=Def\t2\tdet\t_\t_\n2\tcat\tcat\tNOUN\tNN\tNumber=Sing\t0\troot\t_\t_\n\n"
    api = APIClient()
    api.force_authenticate(alice)
    response = api.post("/api/v1/uploads/corpora/", {"format": "conllu", "label_column": "feats:../../x",
                                                      "file": uploaded("c.conllu", conllu)}, format="multipart")
    assert response.status_code == 400
    assert "'../../x' is not a FEATS key" in response.json()["detail"]
    client.force_login(alice)
    page = client.post(reverse("projects:upload", args=["corpus"]), {
        "format": "conllu", "label_column": "feats", "feats_key": "../../x", "file": uploaded("c.conllu", conllu)})
    assert page.status_code == 200 and "is not a FEATS key" in page.content.decode()
    assert_nothing_left(alice)
    upload = services.create_upload(alice, "corpus", {"file": uploaded("c.conllu", conllu),
                                                      "label_column": "feats:Number"})
    assert (upload.label_column, upload.n_labels) == ("feats:Number", 1)


def test_nul_byte_is_named_as_such(alice, assert_nothing_left):
    message = refused(lambda: services.create_corpus_upload(
        alice, format="plain", file=uploaded("c.word", b"The cat .\nA dog .\n"),
        label_file=uploaded("c.label", b"DT NN .\nDT\x00 NN .\n")))
    assert message == "c.label: NUL byte at line 2 (byte 10): this is not a text file"
    assert_nothing_left(alice)


def test_label_line_end_whitespace_is_accepted_and_noted(alice, storage_root, assert_nothing_left):
    upload = services.create_corpus_upload(alice, format="plain", file=uploaded("c.word", b"The cat .\nA dog .\n"),
                                           label_file=uploaded("c.label", b"DT NN . \nDT NN .\t\n"))
    assert upload.n_words == 6 and upload.n_labels == 3
    assert upload.metadata["notes"] == ["c.label: whitespace at the end of 2 line(s) was ignored (first: line 1)"]
    services.delete_upload(alice, upload)
    message = refused(lambda: services.create_corpus_upload(
        alice, format="plain", file=uploaded("c.word", b"The cat .\n"), label_file=uploaded("c.label", b"DT  NN .\n")))
    assert message == "c.label, line 1: empty label at position 2 (a leading or double space)"


def test_test_set_with_a_trailing_blank_line_is_refused_with_its_number(alice, assert_nothing_left):
    message = refused(lambda: services.create_test_set_upload(alice, file=uploaded("s.txt", b"One .\nTwo .\n\n")))
    assert message == "s.txt, line 3: empty line: every line must hold one source sentence"
    assert_nothing_left(alice)


def test_upload_page_tells_the_notes(alice, tiny_model_dir, storage_root, client):
    client.force_login(alice)
    archive = zip_of({**folder_entries(tiny_model_dir), "README.md": b"# card\n"})
    response = client.post(reverse("projects:upload", args=["model"]), {"files": [uploaded("m.zip", archive)]},
                           follow=True)
    page = response.content.decode()
    assert "Not stored: README.md (documentation or repository metadata" in page
    assert "BertModel · " in page
