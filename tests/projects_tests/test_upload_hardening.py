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
from projects.uploads import MAX_SAFETENSORS_HEADER_BYTES, UploadRefused
from tests.factories import UserFactory

from .conftest import folder_entries, uploaded, zip_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


def refused(call) -> str:
    with pytest.raises(UploadRefused) as caught:
        call()
    return caught.value.message


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
