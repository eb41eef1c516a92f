"""Fixtures for the projects tests: a project with one user per role, an isolated storage root and a tiny
model (the archive builders are in tests/support/upload_files.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from projects import selectors
from projects.models import CorpusUpload, ModelUpload, TestSetUpload
from tests.assets import minilm_model_dir
from tests.factories import UserFactory
from tests.support.roles import people_of

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


# ---------------------------------------------------------------------------------------------- people


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def people(db):
    """One user per relation to ``project``: owner, editor, viewer, stranger."""
    return people_of("Probing MiniLM")


@pytest.fixture
def project(people):
    return people["project"]


# ---------------------------------------------------------------------------------------------- storage


@pytest.fixture
def storage_root(settings, tmp_path):
    """A fresh local storage root and upload temp folder for this test."""
    media = tmp_path / "media"
    temp = tmp_path / "upload-tmp"
    media.mkdir()
    temp.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(media), "base_url": "/media/"}},
    }
    settings.MEDIA_ROOT = str(media)
    settings.FILE_UPLOAD_TEMP_DIR = str(temp)
    return media


@pytest.fixture
def assert_nothing_left(storage_root, settings):
    """Check that a refused upload left no file (storage or temp), no row and no quota used."""

    def check(user):
        assert [p for p in storage_root.rglob("*") if p.is_file()] == []
        assert list(Path(settings.FILE_UPLOAD_TEMP_DIR).glob("neurox-upload-*")) == []
        assert ModelUpload.objects.count() == CorpusUpload.objects.count() == TestSetUpload.objects.count() == 0
        assert selectors.storage_used_by(user) == 0

    return check


# ---------------------------------------------------------------------------------------------- models


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised BERT saved with safetensors, plus the MiniLM tokenizer files."""
    import torch
    from transformers import BertConfig, BertModel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copyfile(minilm_model_dir() / name, folder / name)
    return folder
