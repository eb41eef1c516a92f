"""Corpus readers: CoNLL-U and NeuroX plain, their error messages, the summary, and the real UD EWT dev file."""

import hashlib
import io
from pathlib import Path

import pytest

from analysis.engine.formats import (
    CorpusError,
    corpus_summary,
    read_conllu,
    read_plain,
)
from analysis.engine.hashing import sha256_of
from tests.assets import ud_dev as ud_dev_path

UD_DEV_SHA256 = "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6"


def conllu_line(word_id, form, upos="NOUN", xpos="NN", feats="_", deprel="dep"):
    return "\t".join([str(word_id), form, form.lower(), upos, xpos, feats, "0", deprel, "_", "_"])


SMALL_CONLLU = "\n".join([
    "# sent_id = 1",
    "# text = I don't know",
    conllu_line(1, "I", "PRON", "PRP", "Number=Sing|Person=1", "nsubj"),
    "\t".join(["2-3", "don't", "_", "_", "_", "_", "_", "_", "_", "_"]),
    conllu_line(2, "do", "AUX", "VBP", "Mood=Ind", "aux"),
    conllu_line(3, "n't", "PART", "RB", "_", "advmod"),
    conllu_line(4, "know", "VERB", "VB", "_", "root"),
    "\t".join(["4.1", "knows", "know", "VERB", "_", "_", "_", "_", "4:conj", "_"]),
    "",
    "# sent_id = 2",
    conllu_line(1, "Dogs", "NOUN", "NNS", "Number=Plur", "root"),
    conllu_line(2, "?", "_", "_", "_", "punct"),
    "",
]) + "\n"


# ---------------------------------------------------------------------------------------------------------
# CoNLL-U


def test_conllu_skips_comments_ranges_and_empty_nodes():
    corpus = read_conllu(SMALL_CONLLU.encode(), filename="small.conllu")
    assert corpus.sentences == [["I", "do", "n't", "know"], ["Dogs", "?"]]
    assert corpus.labels == [["PRON", "AUX", "PART", "VERB"], ["NOUN", None]]  # "_" is a missing label
    assert corpus.label_column == "upos"
    assert corpus.source_sha256 == hashlib.sha256(SMALL_CONLLU.encode()).hexdigest()


@pytest.mark.parametrize("column, expected", [
    ("xpos", [["PRP", "VBP", "RB", "VB"], ["NNS", None]]),
    ("deprel", [["nsubj", "aux", "advmod", "root"], ["root", "punct"]]),
    ("feats:Number", [["Sing", None, None, None], ["Plur", None]]),
    ("UPOS", [["PRON", "AUX", "PART", "VERB"], ["NOUN", None]]),
])
def test_conllu_label_column_choice(column, expected):
    assert read_conllu(SMALL_CONLLU.encode(), column).labels == expected


def test_conllu_without_labels():
    corpus = read_conllu(SMALL_CONLLU.encode(), None)
    assert corpus.labels is None and corpus.n_words == 6


def test_conllu_unknown_label_column():
    with pytest.raises(CorpusError, match="unknown label column 'lemma'"):
        read_conllu(SMALL_CONLLU.encode(), "lemma")


@pytest.mark.parametrize("make_source", [
    lambda text, path: path,
    lambda text, path: str(path),
    lambda text, path: text.encode(),
    lambda text, path: io.BytesIO(text.encode()),
    lambda text, path: io.StringIO(text),
])
def test_conllu_source_kinds_agree(tmp_path, make_source):
    path = tmp_path / "small.conllu"
    path.write_text(SMALL_CONLLU, encoding="utf-8")
    corpus = read_conllu(make_source(SMALL_CONLLU, path))
    assert corpus.sentences[1] == ["Dogs", "?"]
    assert corpus.source_sha256 == sha256_of(path)


def test_conllu_crlf_and_bom_are_tolerated():
    data = b"\xef\xbb\xbf" + SMALL_CONLLU.replace("\n", "\r\n").encode()
    corpus = read_conllu(data)
    assert corpus.sentences == [["I", "do", "n't", "know"], ["Dogs", "?"]]


def test_conllu_not_utf8_names_byte_offset_and_line():
    data = SMALL_CONLLU.encode()
    bad_at = data.index(b"Dogs")
    data = data[:bad_at] + b"\xff" + data[bad_at + 1:]
    with pytest.raises(CorpusError) as caught:
        read_conllu(data, filename="bad.conllu")
    line = SMALL_CONLLU[:SMALL_CONLLU.index("Dogs")].count("\n") + 1
    assert str(caught.value) == f"bad.conllu, line {line}: not UTF-8 at byte {bad_at:,} (save the file as UTF-8)"


def test_conllu_byte_offset_uses_thousands_separator():
    data = ("# " + "x" * 3298 + "\n").encode() + b"\xc3\x28\n"  # bad byte at offset 3,301
    with pytest.raises(CorpusError, match="not UTF-8 at byte 3,301"):
        read_conllu(data)


def test_conllu_empty_file():
    with pytest.raises(CorpusError, match=r"^empty\.conllu: empty file$"):
        read_conllu(b"", filename="empty.conllu")


def test_conllu_only_comments_has_no_sentences():
    with pytest.raises(CorpusError, match="no sentences found"):
        read_conllu(b"# just a comment\n\n")


def test_conllu_wrong_column_count_names_line():
    text = SMALL_CONLLU.replace(conllu_line(4, "know", "VERB", "VB", "_", "root"), "4\tknow\tknow")
    with pytest.raises(CorpusError) as caught:
        read_conllu(text.encode(), filename="c.conllu")
    assert caught.value.line == 7
    assert "expected 10 tab-separated columns, found 3" in str(caught.value)


def test_conllu_out_of_order_ids():
    text = "\n".join([conllu_line(1, "a"), conllu_line(3, "b")]) + "\n"
    with pytest.raises(CorpusError, match="line 2: word id 3 out of order: expected 2"):
        read_conllu(text.encode(), filename="c.conllu")


def test_conllu_over_long_sentence_names_its_line():
    words = [conllu_line(i, f"w{i}") for i in range(1, 701)]
    text = "\n".join([conllu_line(1, "short"), "", "# comment", *words]) + "\n"
    with pytest.raises(CorpusError) as caught:
        read_conllu(text.encode(), filename="long.conllu")
    assert str(caught.value) == ("long.conllu, line 4: sentence 2 (line 4) has 700 words; the limit is 512 "
                                 "(raise the limit, or skip such sentences)")
    assert len(read_conllu(text.encode(), max_sentence_words=None).sentences[1]) == 700
    assert len(read_conllu(text.encode(), max_sentence_words=700).sentences[1]) == 700


def test_conllu_over_long_sentence_skipped_on_request_with_a_warning():
    words = [conllu_line(i, f"w{i}") for i in range(1, 701)]
    text = "\n".join([conllu_line(1, "short"), "", *words, "", conllu_line(1, "last")]) + "\n"
    corpus = read_conllu(text.encode(), filename="long.conllu", skip_long_sentences=True)
    assert corpus.sentences == [["short"], ["last"]]
    assert len(corpus.labels) == 2
    assert corpus.warnings == ["long.conllu: 1 sentence(s) over the 512-word limit were skipped: "
                               "sentence 2 (line 3) has 700 words"]


def test_conllu_missing_labels_are_warned_with_positions():
    text = "\n".join([conllu_line(1, "a"), conllu_line(2, "b", upos="_"), "", conllu_line(1, "c", upos="_")]) + "\n"
    corpus = read_conllu(text.encode(), filename="c.conllu")
    assert corpus.labels == [["NOUN", None], [None]]
    assert corpus.warnings == ["c.conllu: 2 word(s) have no upos label ('_') and are left out of label statistics "
                               "and probes: sentence 1 word 2, sentence 2 word 1"]


# ---------------------------------------------------------------------------------------------------------
# The real UD English EWT dev file


@pytest.fixture(scope="module")
def ud_dev():
    return read_conllu(ud_dev_path())


def test_ud_ewt_dev_counts(ud_dev):
    summary = corpus_summary(ud_dev)
    assert summary["sentences"] == 2001
    assert summary["words"] == 25147  # syntactic words: 359 multiword ranges and 4 empty nodes are skipped
    assert summary["labelled_words"] == 25147
    assert summary["n_labels"] == 17
    assert summary["sha256"] == UD_DEV_SHA256
    assert summary["max_sentence_words"] == 75
    assert list(summary["labels"].items())[:3] == [("NOUN", 4210), ("PUNCT", 3075), ("VERB", 2707)]
    assert summary["labels"]["X"] == 59
    assert ud_dev.sentences[0] == ["From", "the", "AP", "comes", "this", "story", ":"]
    assert ud_dev.labels[0] == ["ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT"]


def test_ud_ewt_dev_feats_key():
    summary = corpus_summary(read_conllu(ud_dev_path(), "feats:Number"))
    assert summary["labels"] == {"Sing": 7821, "Plur": 1780, "Ptan": 28}
    assert summary["words"] == 25147 and summary["labelled_words"] == 9629


# ---------------------------------------------------------------------------------------------------------
# NeuroX plain


def test_plain_words_and_labels(tmp_path):
    (tmp_path / "c.word").write_text("The cat sat\nDogs bark\n")
    (tmp_path / "c.label").write_text("DET NOUN VERB\nNOUN VERB\n")
    corpus = read_plain(tmp_path / "c.word", tmp_path / "c.label")
    assert corpus.sentences == [["The", "cat", "sat"], ["Dogs", "bark"]]
    assert corpus.labels == [["DET", "NOUN", "VERB"], ["NOUN", "VERB"]]
    assert set(corpus.file_sha256) == {"c.word", "c.label"}
    summary = corpus_summary(corpus)
    assert summary["labels"] == {"NOUN": 2, "VERB": 2, "DET": 1}
    assert summary["sentences"] == 2 and summary["words"] == 5


def test_plain_hash_changes_with_labels():
    words = b"a b\n"
    assert read_plain(words, b"X Y\n").source_sha256 != read_plain(words, b"X Z\n").source_sha256
    assert read_plain(words).source_sha256 == hashlib.sha256(words).hexdigest()


def test_two_file_hashes_combine_by_role_the_one_way_the_engine_combines_hashes():
    from analysis.engine.hashing import combined_sha256, sha256_of
    from analysis.engine.formats import read_test_set

    words, labels = b"a b\n", b"X Y\n"
    expected = combined_sha256({"words": sha256_of(words), "labels": sha256_of(labels)})
    assert read_plain(words, labels, word_filename="x.word", label_filename="x.label").source_sha256 == expected
    assert read_plain(words, labels, word_filename="y.word", label_filename="y.label").source_sha256 == expected
    sources, references = b"one two\n", b"eins zwei\n"
    assert read_test_set(sources, references).source_sha256 == combined_sha256(
        {"sources": sha256_of(sources), "references": sha256_of(references)})


def test_plain_count_mismatch_names_line_and_counts():
    words = "".join(f"w{i} x\n" for i in range(16)) + " ".join(["w"] * 12) + "\n"
    labels = "".join("A B\n" for _ in range(16)) + " ".join(["L"] * 11) + "\n"
    with pytest.raises(CorpusError) as caught:
        read_plain(words.encode(), labels.encode(), word_filename="c.word", label_filename="c.label")
    assert str(caught.value) == "c.label, line 17: count mismatch on line 17: 12 words, 11 labels"


def test_plain_line_count_mismatch():
    with pytest.raises(CorpusError, match="label file has 1 lines but word file c.word has 2"):
        read_plain(b"a\nb\n", b"X\n", word_filename="c.word")


def test_plain_double_space_is_an_error():
    with pytest.raises(CorpusError, match=r"line 2: empty word at position 2 \(a leading or double space\)"):
        read_plain(b"a b\nc  d\n")
    with pytest.raises(CorpusError, match=r"line 1: empty word at position 1 \(a leading or double space\)"):
        read_plain(b" a b\n")


def test_plain_line_end_whitespace_is_ignored_and_reported():
    corpus = read_plain(b"a b \nc\n", b"X Y\t\nZ\n", word_filename="c.word", label_filename="c.label")
    assert corpus.sentences == [["a", "b"], ["c"]] and corpus.labels == [["X", "Y"], ["Z"]]
    assert corpus.warnings == ["c.word: whitespace at the end of 1 line(s) was ignored (first: line 1)",
                               "c.label: whitespace at the end of 1 line(s) was ignored (first: line 1)"]


def test_plain_trailing_blank_lines_ignored_but_inner_blank_line_refused():
    assert len(read_plain(b"a b\nc\n\n\n").sentences) == 2
    with pytest.raises(CorpusError, match="line 2: empty line"):
        read_plain(b"a b\n\nc\n")


def test_plain_empty_and_not_utf8():
    with pytest.raises(CorpusError, match=r"^x\.word: empty file$"):
        read_plain(b"", word_filename="x.word")
    with pytest.raises(CorpusError, match=r"x\.label, line 2: not UTF-8 at byte 2 "):
        read_plain(b"a\nb\n", b"A\n\xe9\n", label_filename="x.label")


def test_plain_over_long_sentence():
    with pytest.raises(CorpusError, match=r"line 2: sentence 2 has 6 words; the limit is 5 \(raise the limit"):
        read_plain(b"a\na b c d e f\n", max_sentence_words=5)
    corpus = read_plain(b"a\na b c d e f\nb c\n", b"A\nA B C D E F\nB C\n", max_sentence_words=5,
                        skip_long_sentences=True, word_filename="x.word")
    assert corpus.sentences == [["a"], ["b", "c"]] and corpus.labels == [["A"], ["B", "C"]]
    assert corpus.warnings == ["x.word: 1 sentence(s) over the 5-word limit were skipped: "
                               "sentence 2 (line 2) has 6 words"]


def test_engine_formats_imports_neither_django_nor_torch():
    import subprocess
    import sys

    code = "import sys, analysis.engine.formats; print(sorted(m for m in ('django', 'torch') if m in sys.modules))"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------------
# Test sets


def test_test_set_sources_and_references():
    from analysis.engine.formats import read_test_set

    test_set = read_test_set(b"Hello world .\nHow are you ?\n", b"Hallo Welt .\nWie geht es ?\n")
    assert test_set.sources == ["Hello world .", "How are you ?"]
    assert test_set.references == ["Hallo Welt .", "Wie geht es ?"]
    assert read_test_set(b"a\n").references is None


def test_test_set_reference_mismatch():
    from analysis.engine.formats import read_test_set

    with pytest.raises(CorpusError, match="refs.txt: reference file has 1 lines but source file src.txt has 2"):
        read_test_set(b"a\nb\n", b"x\n", source_filename="src.txt", reference_filename="refs.txt")
    with pytest.raises(CorpusError, match="src.txt, line 2: empty line"):
        read_test_set(b"a\n\nb\n", source_filename="src.txt")


@pytest.mark.parametrize("text, line", [(b"a\nb\n\n", 3), (b"a\n   \nb\n", 2)])
def test_test_set_blank_line_refused_wherever_it_is(text, line):
    """One rule for the site and the command line: nothing is dropped silently, not even at the end."""
    from analysis.engine.formats import read_test_set

    with pytest.raises(CorpusError, match=f"src.txt, line {line}: empty line"):
        read_test_set(text, source_filename="src.txt")


def test_cli_ablate_reads_the_test_set_with_the_same_rule(tmp_path, capsys):
    from analysis.engine.cli import main

    (tmp_path / "src.txt").write_bytes(b"One sentence .\n\nAnother .\n")
    assert main(["ablate", str(tmp_path / "no-model"), str(tmp_path / "r.json"), str(tmp_path / "src.txt")]) == 2
    assert "src.txt, line 2: empty line" in capsys.readouterr().err
