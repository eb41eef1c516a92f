"""The engine's reader of a stored corpus by its format (the one the upload check and the worker both call), its
typed errors with the file and the line, and the engine's independence from Django."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from analysis.engine import formats
from analysis.engine.formats import CorpusError, read_corpus

ENGINE = Path(formats.__file__).parent
CONLLU = ("1\tThe\tthe\tDET\t_\t_\t2\tdet\t_\t_\n2\tcat\tcat\tNOUN\t_\t_\t0\troot\t_\t_\n\n"
          "1\tA\ta\tDET\t_\t_\t2\tdet\t_\t_\n2\tdog\tdog\tNOUN\t_\t_\t3\tnsubj\t_\t_\n"
          "3\tran\trun\tVERB\t_\t_\t0\troot\t_\t_\n\n")


def test_conllu_is_read_with_its_label_column():
    corpus = read_corpus("conllu", CONLLU.encode(), filename="c.conllu", label_column="upos")
    assert corpus.sentences == [["The", "cat"], ["A", "dog", "ran"]]
    assert corpus.labels == [["DET", "NOUN"], ["DET", "NOUN", "VERB"]] and corpus.label_column == "upos"
    assert read_corpus("conllu", CONLLU.encode(), label_column=None).labels is None


def test_plain_is_read_with_or_without_its_label_file():
    corpus = read_corpus("plain", b"a b\nc\n", filename="c.word", label_source=b"X Y\nZ\n", label_filename="c.label")
    assert corpus.sentences == [["a", "b"], ["c"]] and corpus.labels == [["X", "Y"], ["Z"]]
    assert set(corpus.file_sha256) == {"c.word", "c.label"}
    assert read_corpus("plain", b"a b\nc\n", filename="c.word").labels is None


def test_an_unknown_format_is_a_corpus_error():
    with pytest.raises(CorpusError) as refused:
        read_corpus("csv", b"a,b\n", filename="c.csv")
    assert str(refused.value) == "unknown corpus format 'csv': choose conllu or plain"
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize("fmt, data, labels, message, filename, line", [
    ("conllu", b"1\tThe\tthe\tDET\n", None, "c.conllu, line 1: expected 10 tab-separated columns, found 4",
     "c.conllu", 1),
    ("conllu", b"", None, "c.conllu: empty file", "c.conllu", None),
    ("plain", b"a b\nc\n", b"X Y\nZ W\n", "c.label, line 2: count mismatch on line 2: 1 words, 2 labels",
     "c.label", 2),
    ("plain", b"a\n\xe9\n", None, "c.word, line 2: not UTF-8 at byte 2 (save the file as UTF-8)", "c.word", 2),
])
def test_errors_carry_the_file_and_the_line(fmt, data, labels, message, filename, line):
    with pytest.raises(CorpusError) as refused:
        read_corpus(fmt, data, filename="c.conllu" if fmt == "conllu" else "c.word", label_source=labels,
                    label_filename="c.label")
    assert (str(refused.value), refused.value.filename, refused.value.line) == (message, filename, line)


def test_long_sentences_are_kept_with_a_note_over_the_limit_only():
    data = b"a\na b c d e f\n"
    corpus = read_corpus("plain", data, filename="c.word", note_sentences_over=5)
    assert [len(s) for s in corpus.sentences] == [1, 6]
    assert corpus.warnings[0].startswith("c.word: 1 sentence(s) have more than 5 words (sentence 2: 6 words)")
    assert read_corpus("plain", data, filename="c.word", note_sentences_over=None).warnings == []


def outside_the_engine(name: str) -> bool:
    top = name.split(".")[0]
    return top in ("django", "rest_framework", "celery", "channels", "projects", "accounts", "neurox_site") or (
        top == "analysis" and not (name + ".").startswith("analysis.engine."))


def test_the_engine_imports_no_django_and_nothing_of_the_site():
    imported = []
    for path in sorted(ENGINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            imported += [f"{path.name}: {name}" for name in names if outside_the_engine(name)]
    assert imported == []
