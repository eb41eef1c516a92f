"""Fixtures for the pipeline tests: a project with one user per role, its own storage and results folders, a
tiny BERT model and a small CoNLL-U corpus uploaded through the real upload services and attached."""

from __future__ import annotations

import random

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from analysis import services
from projects.models import Role
from projects.services.attachments import attach_upload
from projects.services.library import create_corpus_upload, create_model_upload
from tests.engine_tests.tiny_models import make_tiny_model
from tests.factories import UserFactory
from tests.projects_tests.factories import MembershipFactory, ProjectFactory

WORDS = {"DET": ["the", "a", "my", "this"], "NOUN": ["cat", "dog", "mat", "park", "tree", "book", "tea"],
         "VERB": ["sat", "ran", "read", "likes", "sang"], "ADP": ["on", "to", "in"], "PUNCT": ["."]}
PATTERN = ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN", "PUNCT"]


def conllu_text(n_sentences: int, seed: int = 0) -> str:
    """A deterministic CoNLL-U corpus of ``n_sentences`` seven-word sentences with UPOS labels."""
    rng = random.Random(seed)
    blocks = []
    for s in range(n_sentences):
        rows = [f"# sent_id = s{s}"]
        for i, tag in enumerate(PATTERN, start=1):
            word = rng.choice(WORDS[tag])
            rows.append(f"{i}\t{word}\t{word}\t{tag}\t_\t_\t{i - 1}\tdep\t_\t_")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks) + "\n\n"


@pytest.fixture
def people(db):
    owner = UserFactory(username="olivia")
    project = ProjectFactory(owner=owner, name="Probing a tiny BERT")
    editor = MembershipFactory(project=project, user=UserFactory(username="eddie"), role=Role.EDITOR).user
    viewer = MembershipFactory(project=project, user=UserFactory(username="vera"), role=Role.VIEWER).user
    stranger = UserFactory(username="sam")
    return {"project": project, "owner": owner, "editor": editor, "viewer": viewer, "stranger": stranger}


@pytest.fixture
def folders(settings, tmp_path):
    """Fresh upload storage and results folders for this test (also given to worker processes)."""
    media, results = tmp_path / "media", tmp_path / "results"
    media.mkdir()
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(media), "base_url": "/media/"}}}
    settings.MEDIA_ROOT = str(media)
    settings.NEUROX_RESULTS_DIR = results
    return {"media": media, "results": results}


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    return make_tiny_model("bert", tmp_path_factory.mktemp("tiny-bert"))


def upload_model(user, model_dir, name="tiny bert"):
    files = [SimpleUploadedFile(p.name, p.read_bytes()) for p in sorted(model_dir.iterdir()) if p.is_file()]
    return create_model_upload(user, files=files, name=name)


def upload_corpus(user, n_sentences=40, seed=0, name="toy.conllu"):
    data = conllu_text(n_sentences, seed).encode()
    return create_corpus_upload(user, file=SimpleUploadedFile(name, data), label_column="upos", name=name)


@pytest.fixture
def attached(people, folders, tiny_bert):
    """The owner's tiny model and 40-sentence corpus, attached to the project."""
    owner, project = people["owner"], people["project"]
    model, corpus = upload_model(owner, tiny_bert), upload_corpus(owner)
    attach_upload(owner, project, model)
    attach_upload(owner, project, corpus)
    return {"model": model, "corpus": corpus}


def request_for(attached, **overrides):
    return {"models": [attached["model"].pk], "corpus": attached["corpus"].pk, "neuron_sets": ["hidden"],
            "rankings": [{"method": "probeless", "bootstrap": 0}, {"method": "anova", "bootstrap": 2}],
            "statistics": True, **overrides}


def two_runs_over_a_limit_of_one(people, attached, capture):
    """The owner may run one at a time and starts two runs (messages not sent): the second waits its turn."""
    owner = people["owner"]
    owner.max_concurrent_runs = 1
    owner.save()
    with capture(execute=False):
        first = services.create_run(owner, people["project"], request_for(attached))
        second = services.create_run(owner, people["project"], request_for(attached, seed=1))
    return first, second
