"""Corpus readers (CoNLL-U, NeuroX plain ``.word``/``.label``), shared by the engine and the upload validators.

Errors are :class:`CorpusError` with the file, the line and what is wrong, so a user can fix the file.

A *source* is a path, ``bytes``, or a readable file object (binary or text; a Django ``UploadedFile`` works).
Sources are read in chunks and decoded strictly as UTF-8 line by line, so a bad byte is reported with its
offset and line, and the sha256 of the raw bytes is computed on the way (no second pass over the file).
A UTF-8 byte-order mark at the very start is tolerated and skipped (it is still part of the hash).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from .hashing import Source, combined_sha256, iter_chunks

DEFAULT_MAX_SENTENCE_WORDS = 512
BASIC_LABEL_COLUMNS = ("upos", "xpos", "deprel")
# A UD feature name: Number, PronType, Number[psor] (https://universaldependencies.org/u/feat/)
FEATS_KEY = re.compile(r"^[A-Z][A-Za-z0-9]*(\[[a-z0-9]+\])?$")
CONLLU_COLUMNS = 10
MISSING = "_"
_BOM = b"\xef\xbb\xbf"


@dataclass
class Corpus:
    sentences: list[list[str]]
    labels: list[list[str | None]] | None = None  # one label per word; None = missing label
    source_sha256: str = ""
    label_column: str = ""
    warnings: list[str] = field(default_factory=list)
    # sha256 of each file read, by file name (the plain format reads two files; source_sha256 covers both)
    file_sha256: dict[str, str] = field(default_factory=dict)

    @property
    def n_words(self) -> int:
        return sum(len(s) for s in self.sentences)

    def label_names(self) -> list[str]:
        """Sorted label set: label ids are positions in this list, so they are deterministic."""
        if self.labels is None:
            return []
        return sorted({label for sentence in self.labels for label in sentence if label is not None})


class CorpusError(ValueError):
    def __init__(self, message: str, *, filename: str = "", line: int | None = None):
        self.filename, self.line, self.reason = filename, line, message
        where = filename + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}" if where else message)


# ---------------------------------------------------------------------------------------------------------
# Reading sources: chunks -> hashed, strictly decoded, numbered lines


def _source_name(source: Source, filename: str | None) -> str:
    if filename:
        return filename
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(os.fspath(source))
    name = getattr(source, "name", None)
    return os.path.basename(str(name)) if isinstance(name, (str, os.PathLike)) and name else "<upload>"


class _NumberedLines:
    """Iterates ``(line_number, text)`` over a source; counts bytes and hashes them while reading."""

    def __init__(self, source: Source, filename: str):
        self.source, self.filename = source, filename
        self.digest = hashlib.sha256()
        self.total_bytes = 0

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    def __iter__(self) -> Iterator[tuple[int, str]]:
        pending = b""
        line_number = 0
        offset = 0  # byte offset of the start of ``pending`` in the file
        for chunk in iter_chunks(self.source):
            self.digest.update(chunk)
            self.total_bytes += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line_number += 1
                yield line_number, self._decode(raw, offset, line_number)
                offset += len(raw) + 1
        if pending:
            line_number += 1
            yield line_number, self._decode(pending, offset, line_number)

    def _decode(self, raw: bytes, offset: int, line_number: int) -> str:
        if offset == 0 and raw.startswith(_BOM):
            raw, offset = raw[len(_BOM):], len(_BOM)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CorpusError(
                f"not UTF-8 at byte {offset + error.start:,} (save the file as UTF-8)",
                filename=self.filename, line=line_number,
            ) from None
        if "\x00" in text:  # valid UTF-8, but no text file holds one; it would pass as part of a word
            position = offset + raw.index(b"\x00")
            raise CorpusError(f"NUL byte at line {line_number:,} (byte {position:,}): this is not a text file",
                              filename=self.filename)
        return text[:-1] if text.endswith("\r") else text


# ---------------------------------------------------------------------------------------------------------
# CoNLL-U


def check_label_column(label_column: str | None) -> str | None:
    """Normalise a label column choice: ``upos``, ``xpos``, ``deprel``, ``feats:<Key>`` or None (no labels)."""
    if label_column is None or label_column == "":
        return None
    column = label_column.strip()
    lowered = column.lower()
    if lowered in BASIC_LABEL_COLUMNS:
        return lowered
    if lowered.startswith("feats:"):
        key = column[len("feats:"):].strip()  # FEATS keys are case-sensitive (Number, PronType)
        if FEATS_KEY.match(key):
            return "feats:" + key
        raise CorpusError(
            f"{key!r} is not a FEATS key: a key is a feature name such as Number, PronType or Number[psor]"
        )
    raise CorpusError(
        f"unknown label column {label_column!r}: choose upos, xpos, deprel or feats:<Key> (e.g. feats:Number)"
    )


def _label_of(token, column: str) -> str | None:
    if column.startswith("feats:"):
        feats = token.get("feats") or {}
        value = feats.get(column[len("feats:"):])
    else:
        value = token.get(column)
    if value is None or value == MISSING or value == "":
        return None
    return str(value)


def read_conllu(
    source: Source,
    label_column: str | None = "upos",
    *,
    filename: str | None = None,
    max_sentence_words: int | None = DEFAULT_MAX_SENTENCE_WORDS,
    skip_long_sentences: bool = False,
) -> Corpus:
    """Read syntactic words (and one label column) from CoNLL-U.

    A sentence over ``max_sentence_words`` (None: no limit) refuses the file, naming the sentence, its line and
    its length; with ``skip_long_sentences`` it is left out instead and listed in ``warnings``. Extraction
    windows long sentences, so the limit only guards against files that are not sentence-split. Words with a
    missing label (``_``) are listed in ``warnings`` by sentence and word position.

    Comment lines, multiword-token ranges (``3-4``) and empty nodes (``8.1``) are skipped; ``_`` in the label
    column is a missing label (``None``). ``label_column=None`` reads words only. Each sentence block is parsed
    with the ``conllu`` package; this function adds what that package does not check (10 columns per line,
    word ids 1..n in order) and line numbers in every error.
    """
    import conllu
    from conllu.exceptions import ParseException

    name = _source_name(source, filename)
    column = check_label_column(label_column)
    lines = _NumberedLines(source, name)
    sentences: list[list[str]] = []
    labels: list[list[str | None]] = []
    block: list[str] = []
    block_start = 0
    words_in_block = 0
    skipped: list[str] = []
    n_blocks = 0

    def finish_block():
        nonlocal block, words_in_block, n_blocks
        if words_in_block:
            n_blocks += 1
            try:
                tokens = conllu.parse_token_and_metadata("\n".join(block))
            except ParseException as error:
                raise CorpusError(f"cannot parse sentence: {error}", filename=name, line=block_start) from None
            words = [token for token in tokens if isinstance(token["id"], int)]
            if max_sentence_words is not None and len(words) > max_sentence_words:
                where = f"sentence {n_blocks:,} (line {block_start:,}) has {len(words):,} words"
                if not skip_long_sentences:
                    raise CorpusError(
                        f"{where}; the limit is {max_sentence_words:,} (raise the limit, or skip such sentences)",
                        filename=name, line=block_start,
                    )
                skipped.append(where)
                block, words_in_block = [], 0
                return
            sentences.append([token["form"] for token in words])
            if column is not None:
                labels.append([_label_of(token, column) for token in words])
        block, words_in_block = [], 0

    for line_number, text in lines:
        if not text.strip():
            finish_block()
            continue
        if text.startswith("#"):
            block.append(text)
            continue
        if _is_next_word(text, words_in_block, name, line_number):
            if words_in_block == 0:
                block_start = line_number
            words_in_block += 1
        block.append(text)
    finish_block()

    if lines.total_bytes == 0:
        raise CorpusError("empty file", filename=name)
    if not sentences:
        raise CorpusError("no sentences found (is this a CoNLL-U file?)", filename=name)
    corpus = Corpus(
        sentences=sentences,
        labels=labels if column is not None else None,
        source_sha256=lines.sha256,
        label_column=column or "",
        file_sha256={name: lines.sha256},
    )
    if skipped:
        corpus.warnings.append(_skipped_warning(name, skipped, max_sentence_words))
    if column is not None:
        corpus.warnings.extend(_missing_label_warnings(corpus, column, name))
    return corpus


def _is_next_word(text: str, words_in_block: int, filename: str, line_number: int) -> bool:
    """Check a token line of CoNLL-U: 10 columns, and a word id that is the sentence's next word (True) or a
    multiword-token range or an empty node (False)."""
    fields = text.split("\t")
    if len(fields) != CONLLU_COLUMNS:
        raise CorpusError(
            f"expected {CONLLU_COLUMNS} tab-separated columns, found {len(fields)}", filename=filename, line=line_number
        )
    word_id = fields[0]
    if word_id.isdigit():
        if int(word_id) != words_in_block + 1:
            raise CorpusError(
                f"word id {word_id} out of order: expected {words_in_block + 1}", filename=filename, line=line_number
            )
        return True
    if not _is_range_or_empty_node(word_id):
        raise CorpusError(f"invalid word id {word_id!r}", filename=filename, line=line_number)
    return False


def _missing_label_warnings(corpus: Corpus, column: str, filename: str) -> list[str]:
    """The warning that no word has a label in ``column``, or the one that lists the words without one (if any)."""
    if not corpus.label_names():
        return [f"no word has a label in column {column}"]
    unlabelled = [(s, w) for s, tags in enumerate(corpus.labels, start=1) for w, tag in enumerate(tags, start=1)
                  if tag is None]
    if not unlabelled:
        return []
    shown = ", ".join(f"sentence {s} word {w}" for s, w in unlabelled[:10])
    return [
        f"{filename}: {len(unlabelled):,} word(s) have no {column} label ('_') and are left out of label "
        f"statistics and probes: {shown}{' ...' if len(unlabelled) > 10 else ''}"
    ]


def _skipped_warning(filename: str, skipped: list[str], limit: int) -> str:
    shown = "; ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else "")
    return f"{filename}: {len(skipped):,} sentence(s) over the {limit:,}-word limit were skipped: {shown}"


def long_sentences_note(corpus: Corpus, limit: int | None, filename: str) -> str | None:
    """A note on the sentences of ``corpus`` over ``limit`` words (None: no note), for a corpus read without a
    limit: extraction keeps them whole, windowed (see :mod:`extract`)."""
    if limit is None:
        return None
    long = [(number, len(words)) for number, words in enumerate(corpus.sentences, start=1) if len(words) > limit]
    if not long:
        return None
    shown = "; ".join(f"sentence {number:,}: {length:,} words" for number, length in long[:10])
    return (f"{filename}: {len(long):,} sentence(s) have more than {limit:,} words ({shown}"
            f"{' ...' if len(long) > 10 else ''}). They are kept: extraction reads a sentence longer than the "
            "model's input in overlapping windows, so no word is lost. Lengths like these can mean the file is "
            "not split into sentences.")


def _is_range_or_empty_node(word_id: str) -> bool:
    for separator in ("-", "."):
        head, sep, tail = word_id.partition(separator)
        if sep and head.isdigit() and tail.isdigit():
            return True
    return False


# ---------------------------------------------------------------------------------------------------------
# NeuroX plain: name.word + name.label


def _plain_lines(lines: _NumberedLines, what: str, warnings: list[str]) -> list[list[str]]:
    """Split each line on single spaces. Blank lines at the end are ignored; whitespace at the end of a line
    (common from other tools) is removed and reported in ``warnings``; any other blank line or empty word (two
    spaces in a row, a leading space) is an error, because it would shift the word/label alignment silently."""
    rows: list[tuple[int, str]] = list(lines)
    while rows and not rows[-1][1].strip():
        rows.pop()
    if lines.total_bytes == 0 or not rows:
        raise CorpusError("empty file", filename=lines.filename)
    result = []
    trimmed = []
    for line_number, text in rows:
        if not text.strip():
            raise CorpusError(f"empty line: every line must hold one sentence's {what}", filename=lines.filename,
                              line=line_number)
        if text != text.rstrip():
            trimmed.append(line_number)
            text = text.rstrip()
        items = text.split(" ")
        if "" in items:
            position = items.index("") + 1
            raise CorpusError(
                f"empty {what[:-1]} at position {position} (a leading or double space)",
                filename=lines.filename, line=line_number,
            )
        result.append(items)
    if trimmed:
        warnings.append(f"{lines.filename}: whitespace at the end of {len(trimmed):,} line(s) was ignored "
                        f"(first: line {trimmed[0]:,})")
    return result


def read_plain(
    word_source: Source,
    label_source: Source | None = None,
    *,
    word_filename: str | None = None,
    label_filename: str | None = None,
    max_sentence_words: int | None = DEFAULT_MAX_SENTENCE_WORDS,
    skip_long_sentences: bool = False,
) -> Corpus:
    """Read the NeuroX plain format: one sentence per line, words split on single spaces, and an optional
    line-aligned label file with one label per word. Labels are taken verbatim (``_`` is not special here,
    unlike CoNLL-U, because the NeuroX tools never treated it as missing).

    ``source_sha256`` covers both files, by their roles (``hashing.combined_sha256`` of ``words`` and ``labels``;
    the word file's own sha256 when there is no label file), so a corpus is identified by its content, not by
    file names. ``max_sentence_words`` and ``skip_long_sentences`` as for :func:`read_conllu` (a skipped
    sentence drops its label line too)."""
    word_name = _source_name(word_source, word_filename)
    word_lines = _NumberedLines(word_source, word_name)
    warnings: list[str] = []
    sentences = _plain_lines(word_lines, "words", warnings)
    too_long = []
    if max_sentence_words is not None:
        for line_number, words in enumerate(sentences, start=1):
            if len(words) > max_sentence_words:
                if not skip_long_sentences:
                    raise CorpusError(
                        f"sentence {line_number:,} has {len(words):,} words; the limit is {max_sentence_words:,} "
                        "(raise the limit, or skip such sentences)",
                        filename=word_name, line=line_number,
                    )
                too_long.append(line_number - 1)
    if too_long:
        warnings.append(_skipped_warning(
            word_name, [f"sentence {i + 1:,} (line {i + 1:,}) has {len(sentences[i]):,} words" for i in too_long],
            max_sentence_words))
    kept = [i for i in range(len(sentences)) if i not in set(too_long)]
    file_sha256 = {word_name: word_lines.sha256}
    if label_source is None:
        if too_long:
            sentences = [sentences[i] for i in kept]
        return Corpus(sentences=sentences, source_sha256=word_lines.sha256, file_sha256=file_sha256,
                      warnings=warnings)

    label_name = _source_name(label_source, label_filename)
    label_lines = _NumberedLines(label_source, label_name)
    labels = _plain_lines(label_lines, "labels", warnings)
    if len(labels) != len(sentences):
        raise CorpusError(
            f"label file has {len(labels):,} lines but word file {word_name} has {len(sentences):,}",
            filename=label_name,
        )
    for line_number, (words, sentence_labels) in enumerate(zip(sentences, labels), start=1):
        if len(words) != len(sentence_labels):
            raise CorpusError(
                f"count mismatch on line {line_number}: {len(words):,} words, {len(sentence_labels):,} labels",
                filename=label_name, line=line_number,
            )
    file_sha256[label_name] = label_lines.sha256
    combined = combined_sha256({"words": word_lines.sha256, "labels": label_lines.sha256})
    if too_long:
        sentences, labels = [sentences[i] for i in kept], [labels[i] for i in kept]
    return Corpus(
        sentences=sentences, labels=labels, source_sha256=combined, label_column="label", file_sha256=file_sha256,
        warnings=warnings,
    )


# ---------------------------------------------------------------------------------------------------------
# A stored corpus, by its format: what the upload check and the worker read


def read_corpus(
    fmt: str,
    source: Source,
    *,
    filename: str | None = None,
    label_column: str | None = "upos",
    label_source: Source | None = None,
    label_filename: str | None = None,
    note_sentences_over: int | None = DEFAULT_MAX_SENTENCE_WORDS,
) -> Corpus:
    """Read a corpus in ``fmt``: ``conllu`` (labels from ``label_column``; None reads words only) or ``plain``
    (NeuroX ``.word`` with an optional line-aligned ``.label`` file, ``label_source``). The one reader of an
    uploaded corpus, when it is uploaded and when a worker extracts from it; raises :class:`CorpusError`.

    Sentences of any length are kept, since extraction windows them; those over ``note_sentences_over`` words
    (None: no note) get a note in ``corpus.warnings`` (:func:`long_sentences_note`)."""
    if fmt == "conllu":
        corpus = read_conllu(source, label_column, filename=filename, max_sentence_words=None)
    elif fmt == "plain":
        corpus = read_plain(source, label_source, word_filename=filename, label_filename=label_filename,
                            max_sentence_words=None)
    else:
        raise CorpusError(f"unknown corpus format {fmt!r}: choose conllu or plain")
    note = long_sentences_note(corpus, note_sentences_over, _source_name(source, filename))
    if note:
        corpus.warnings.append(note)
    return corpus


# ---------------------------------------------------------------------------------------------------------
# Test sets for model-level ablation: source sentences and (optional) line-aligned references


@dataclass
class TestSet:
    sources: list[str]
    references: list[str] | None = None
    source_sha256: str = ""
    file_sha256: dict[str, str] = field(default_factory=dict)

    __test__ = False  # not a pytest class


def _sentence_lines(lines: _NumberedLines, what: str) -> list[str]:
    """Every line is one sentence: a blank line anywhere, also at the end, is refused with its number, since
    dropping it would silently misalign sources and references."""
    rows = list(lines)
    if lines.total_bytes == 0 or not rows:
        raise CorpusError("empty file", filename=lines.filename)
    for line_number, text in rows:
        if not text.strip():
            raise CorpusError(f"empty line: every line must hold one {what}", filename=lines.filename,
                              line=line_number)
    return [text for _, text in rows]


def read_test_set(
    source: Source,
    references: Source | None = None,
    *,
    source_filename: str | None = None,
    reference_filename: str | None = None,
) -> TestSet:
    """One source sentence per line and, optionally, a line-aligned reference (target) per sentence, as an
    encoder-decoder model needs for BLEU/chrF. The one reader of test sets, for the site and the command line:
    a blank line is an error wherever it is (nothing is dropped silently). ``source_sha256`` covers both files by their roles when there
    are references, as the plain corpus format's does."""
    source_name = _source_name(source, source_filename)
    source_lines = _NumberedLines(source, source_name)
    sources = _sentence_lines(source_lines, "source sentence")
    file_sha256 = {source_name: source_lines.sha256}
    if references is None:
        return TestSet(sources=sources, source_sha256=source_lines.sha256, file_sha256=file_sha256)
    reference_name = _source_name(references, reference_filename)
    reference_lines = _NumberedLines(references, reference_name)
    targets = _sentence_lines(reference_lines, "reference")
    if len(targets) != len(sources):
        raise CorpusError(
            f"reference file has {len(targets):,} lines but source file {source_name} has {len(sources):,}; "
            "they must be line-aligned",
            filename=reference_name,
        )
    file_sha256[reference_name] = reference_lines.sha256
    combined = combined_sha256({"sources": source_lines.sha256, "references": reference_lines.sha256})
    return TestSet(sources=sources, references=targets, source_sha256=combined, file_sha256=file_sha256)


# ---------------------------------------------------------------------------------------------------------
# Summary


def corpus_summary(corpus: Corpus) -> dict:
    """Small JSON-ready facts about a corpus: counts, the label set with frequencies (most frequent first,
    ties by name), hashes. Suitable for an upload's metadata column."""
    frequencies: Counter[str] = Counter()
    labelled = 0
    if corpus.labels is not None:
        for sentence_labels in corpus.labels:
            for label in sentence_labels:
                if label is not None:
                    frequencies[label] += 1
                    labelled += 1
    lengths = [len(sentence) for sentence in corpus.sentences]
    return {
        "sentences": len(corpus.sentences),
        "words": corpus.n_words,
        "labelled_words": labelled,
        "label_column": corpus.label_column,
        "n_labels": len(frequencies),
        "labels": dict(sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))),
        "max_sentence_words": max(lengths, default=0),
        "sha256": corpus.source_sha256,
        "file_sha256": dict(corpus.file_sha256),
        "warnings": list(corpus.warnings),
    }
