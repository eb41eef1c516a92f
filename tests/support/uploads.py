"""Uploads through the real upload services: a model directory, the small CoNLL-U corpus, both attached."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from projects.services.attachments import attach_upload
from projects.services.library import create_corpus_upload, create_model_upload
from tests.support.corpora import conllu_text


def upload_model(user, model_dir, name="tiny bert"):
    files = [SimpleUploadedFile(p.name, p.read_bytes()) for p in sorted(model_dir.iterdir()) if p.is_file()]
    return create_model_upload(user, files=files, name=name)


def upload_corpus(user, n_sentences=40, seed=0, name="toy.conllu"):
    data = conllu_text(n_sentences, seed).encode()
    return create_corpus_upload(user, file=SimpleUploadedFile(name, data), label_column="upos", name=name)


def attach_model_and_corpus(owner, project, model_dir) -> dict:
    """``owner`` uploads ``model_dir`` and the 40-sentence corpus and attaches both to ``project``."""
    model, corpus = upload_model(owner, model_dir), upload_corpus(owner)
    attach_upload(owner, project, model)
    attach_upload(owner, project, corpus)
    return {"model": model, "corpus": corpus}
