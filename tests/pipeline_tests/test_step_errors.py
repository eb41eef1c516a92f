"""How a failed step's reason is written: the worker reads the corpus with the engine's reader, whose typed
errors (not class names) ``runner.explain`` recognises as messages for the person who started the run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from analysis.runs import runner, services
from analysis.engine.formats import CorpusError
from analysis.engine.loading import ModelLoadError
from analysis.engine.store import StoreError
from analysis.models import RunState, StepKind, StepState
from tests.support.runs import request_for

STEP = SimpleNamespace(title="Activation extraction")


@pytest.mark.parametrize("error, expected", [
    (CorpusError("count mismatch on line 2: 1 words, 2 labels", filename="c.label", line=2),
     "C.label, line 2: count mismatch on line 2: 1 words, 2 labels."),
    (ModelLoadError("tiny: the tokenizer could not be loaded: no vocab"),
     "Tiny: the tokenizer could not be loaded: no vocab."),
    (StoreError("the activation store is incomplete."), "The activation store is incomplete."),
    (MemoryError(), "Activation extraction ran out of memory. Choose fewer neuron sets or layers, a smaller corpus, "
                    "or run it on a worker with more memory."),
])
def test_the_engines_errors_are_explained_by_their_type(error, expected):
    assert runner.explain(STEP, error) == expected


def test_a_cuda_out_of_memory_error_is_explained_as_memory():
    import torch

    assert "ran out of memory" in runner.explain(STEP, torch.cuda.OutOfMemoryError("CUDA out of memory"))


def test_an_error_is_not_recognised_by_its_class_name_alone():
    class CorpusError(Exception):  # noqa: N818 — only the name is the engine's
        pass

    class OutOfMemoryError(Exception):  # noqa: N818
        pass

    for error in (CorpusError("c.word: empty file"), OutOfMemoryError("boom"),
                  ValidationError("a web form's refusal")):
        assert runner.explain(STEP, error).startswith(f"Unexpected error ({type(error).__name__}: ")


@pytest.mark.django_db
def test_a_stored_corpus_the_engine_refuses_fails_the_extraction_with_the_engines_message(
        people, attached, folders, django_capture_on_commit_callbacks):
    corpus = attached["corpus"]
    stored = folders["media"] / corpus.storage_prefix / corpus.metadata["word_file"]
    stored.write_bytes(b"1\tThe\tthe\tDET\t_\t_\t0\troot\t_\t_\n2\tcat\n")
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    run.refresh_from_db()
    extract = run.steps.get(kind=StepKind.EXTRACT)
    assert run.state == RunState.FAILED and extract.state == StepState.FAILED
    assert corpus.metadata["word_file"] == "toy.conllu"  # the reason starts with a capital, as every reason does
    assert extract.error == "Toy.conllu, line 2: expected 10 tab-separated columns, found 2."
