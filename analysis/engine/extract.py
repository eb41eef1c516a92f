"""Batched extraction of word-level activations into an :class:`~analysis.engine.store.ActivationStore`.

How it works, and the choices the brief left open:

* **Plan.** Every sentence is tokenized once (fast tokenizer, ``is_split_into_words=True``) to count each word's
  subwords. Sentences whose tokens (plus special tokens) exceed the model's maximum become several overlapping
  *windows*; each word is taken from the window where it has most context (the largest distance, in words, to
  the window's nearer edge; ties go to the earlier window). Segments (whole sentences or windows) are sorted by
  token length, longest first, and packed into batches of at most ``max_tokens_per_batch`` padded tokens;
  consecutive batches form *chunks* of about ``chunk_words`` words, the unit of the store's crash journal.
* **Forward.** Right padding with an attention mask, ``torch.inference_mode``, the model's base module (no LM
  head logits). Hooks on the neuron sites (:func:`analysis.engine.models.neuron_sites`) keep only the word
  positions as soon as each layer is computed, convert them to float16 and hand them to the store, so memory per
  batch is bounded and nothing accumulates across batches.
* **Aggregation** of a word's subwords: ``first``, ``last`` (NeuroX's default) or ``mean``; special tokens are
  never part of a word.
* **Empty sentences** are kept with 0 words (their offsets are equal), never sent to the model, logged and listed
  in ``meta["report"]["empty_sentences"]``; labels and word indices stay aligned with the corpus.
* **Over-long sentences** are windowed (listed in ``report["windowed_sentences"]`` and logged), never dropped.
  A single word with more subwords than fit in one window keeps its first subwords (``report["cut_words"]``).
* **Words with no subwords** (e.g. a lone zero-width character that the normaliser deletes) take the nearest
  token: the last subword of the previous word, else the leading special token, else the first subword of the
  next word (``report["words_without_subwords"]``).
* **Encoder-decoder models**: ``enc.*`` sets are read on the source words; ``dec.*`` sets teacher-force the same
  words: the decoder input is ``[decoder_start] + source tokens``, and a word's decoder positions are those where
  its subwords are the decoder *input* (the representation after reading the word). methods.md also allows the
  model's own output when no reference exists; with word-level labels only the same words make sense.
* **Hidden layers** are raw block outputs (see :mod:`analysis.engine.models`): the last layer has no final
  LayerNorm for GPT-2/Llama/T5, unlike ``output_hidden_states[-1]``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .formats import Corpus
from .store import STATUS_COMPLETE, ActivationStore, StoreWriter, store_key

AGGREGATIONS = ("first", "last", "mean")
REPORT_LIST_LIMIT = 1000  # longer report lists are cut (their counts are kept)
_UNBOUNDED_LENGTH = 1_000_000


@dataclass
class Segment:
    """A sentence or one window of it: words [start, end) go to the model, words [keep_start, keep_end) are kept."""

    sentence: int
    start: int
    end: int
    keep_start: int
    keep_end: int
    tokens: int  # subwords of words [start, end), without special tokens


# ---------------------------------------------------------------------------------------------- planning


def model_max_tokens(loaded, max_length: int | None = None) -> int:
    """Maximum tokens per sequence: the smallest of the tokenizer's and the config's limits and ``max_length``."""
    limits = []
    tokenizer_limit = getattr(loaded.tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < _UNBOUNDED_LENGTH:
        limits.append(tokenizer_limit)
    config = loaded.model.config
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            limits.append(value)
            break
    if max_length:
        limits.append(int(max_length))
    return min(limits) if limits else 512


def subword_counts(tokenizer, sentences: Sequence[Sequence[str]], batch: int = 1000) -> list[np.ndarray]:
    """Per sentence, the number of subwords of each word (0 for a word the tokenizer deletes)."""
    counts = []
    for start in range(0, len(sentences), batch):
        part = [list(s) for s in sentences[start : start + batch]]
        nonempty = [i for i, s in enumerate(part) if s]
        encoded = tokenizer([part[i] for i in nonempty], is_split_into_words=True, add_special_tokens=False)
        per_sentence = [np.zeros(len(s), dtype=np.int32) for s in part]
        for row, i in enumerate(nonempty):
            ids = [w for w in encoded.word_ids(row) if w is not None]
            per_sentence[i] = np.bincount(np.asarray(ids, dtype=np.int64), minlength=len(part[i])).astype(np.int32)
        counts.extend(per_sentence)
    return counts


def plan_windows(counts: np.ndarray, budget: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Overlapping windows over one sentence's words: ``(start, end, keep_start, keep_end)``.

    Each window holds at most ``budget`` subwords (a single longer word gets a window of its own and is cut);
    consecutive windows share about ``overlap`` subwords; each word is kept from the window where it is
    farthest from an edge.
    """
    n = len(counts)
    windows = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + counts[end] <= budget:
            used += counts[end]
            end += 1
        if end == start:  # one word longer than a window
            end = start + 1
        windows.append((start, end))
        if end >= n:
            break
        next_start, shared = end, 0
        while next_start - 1 > start and shared + counts[next_start - 1] <= overlap:
            next_start -= 1
            shared += counts[next_start]
        start = next_start

    owner = np.zeros(n, dtype=np.int64)
    for word in range(n):
        best, best_context = -1, -1
        for k, (a, b) in enumerate(windows):
            if a <= word < b:
                context = min(word - a, b - 1 - word)
                if context > best_context:
                    best, best_context = k, context
        owner[word] = best
    result = []
    for k, (a, b) in enumerate(windows):
        kept = np.flatnonzero(owner == k)
        if len(kept):
            result.append((a, b, int(kept[0]), int(kept[-1]) + 1))
    return result


def plan_batches(segments: list[Segment], specials: int, max_tokens: int, max_sentences: int) -> list[list[int]]:
    """Indices into ``segments`` (already sorted longest first), packed so that padded tokens ≤ ``max_tokens``."""
    batches, current, width = [], [], 0
    for index, segment in enumerate(segments):
        length = segment.tokens + specials
        new_width = max(width, length)
        if current and (new_width * (len(current) + 1) > max_tokens or len(current) >= max_sentences):
            batches.append(current)
            current, new_width = [], length
        current.append(index)
        width = new_width
    if current:
        batches.append(current)
    return batches


def _group_chunks(batches: list[list[int]], segments: list[Segment], chunk_words: int) -> list[list[int]]:
    chunks, current, words = [], [], 0
    for b, batch in enumerate(batches):
        current.append(b)
        words += sum(segments[i].keep_end - segments[i].keep_start for i in batch)
        if words >= chunk_words:
            chunks.append(current)
            current, words = [], 0
    if current:
        chunks.append(current)
    return chunks


def corpus_sha256(sentences, labels) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(sentences, ensure_ascii=False).encode("utf-8"))
    digest.update(json.dumps(labels, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def _versions() -> dict:
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def _capped(items: list) -> list:
    return items[:REPORT_LIST_LIMIT]


# ---------------------------------------------------------------------------------------------- extraction


def resolve_neuron_sets(sites: dict, requested: Sequence[str]) -> list[str]:
    """Requested names, expanding ``hidden``/``mlp`` to ``enc.``/``dec.`` sets for encoder-decoder models."""
    resolved = []
    for name in requested:
        if name in sites:
            resolved.append(name)
            continue
        expanded = [f"{side}.{name}" for side in ("enc", "dec") if f"{side}.{name}" in sites]
        if not expanded:
            raise ValueError(f"unknown neuron set {name!r}; this model has {', '.join(sites)}")
        resolved.extend(expanded)
    order = list(sites)
    return sorted(set(resolved), key=order.index)


def _nearest_token(positions_by_word: dict[int, list[int]], word: int, leading_special: bool) -> int:
    """For a word with no subword: the previous word's last subword, else the leading special token, else the
    next word's first subword."""
    earlier = [w for w in positions_by_word if w < word]
    if earlier:
        return positions_by_word[max(earlier)][-1]
    later = [w for w in positions_by_word if w > word]
    if leading_special or not later:
        return 0
    return positions_by_word[min(later)][0]


def _word_positions(word_ids: list, keep: range, aggregation: str, leading_special: bool):
    """(token positions, word slot per position) for the kept words of one sequence."""
    positions_by_word: dict[int, list[int]] = {}
    for position, word in enumerate(word_ids):
        if word is not None:
            positions_by_word.setdefault(word, []).append(position)
    token_positions, slots = [], []
    for slot, word in enumerate(keep):
        positions = positions_by_word.get(word)
        if not positions:
            positions = [_nearest_token(positions_by_word, word, leading_special)]
        if aggregation == "first":
            positions = positions[:1]
        elif aggregation == "last":
            positions = positions[-1:]
        token_positions.extend(positions)
        slots.extend([slot] * len(positions))
    return token_positions, slots


def word_activations(tokens, word_ids: list, n_words: int, aggregation: str):
    """``[n_words, units]`` word rows from one sequence's token activations ``[tokens, units]``, aggregated
    exactly as extraction does (for callers that run the model themselves, e.g. manipulation)."""
    import torch

    positions, slots = _word_positions(word_ids, range(n_words), aggregation,
                                       leading_special=bool(word_ids) and word_ids[0] is None)
    picked = tokens[torch.as_tensor(positions, dtype=torch.long, device=tokens.device)]
    if aggregation != "mean":
        return picked
    slots = torch.as_tensor(slots, dtype=torch.long, device=tokens.device)
    summed = torch.zeros((n_words, tokens.shape[-1]), dtype=picked.dtype, device=tokens.device)
    summed.index_add_(0, slots, picked)
    counts = torch.bincount(slots, minlength=n_words).clamp(min=1).to(picked.dtype)
    return summed / counts[:, None]


def extract_activations(
    model,
    corpus,
    store_path,
    *,
    neuron_sets: Sequence[str] = ("hidden", "mlp"),
    aggregation: str = "last",
    max_tokens_per_batch: int = 4096,
    max_sentences_per_batch: int = 256,
    max_length: int | None = None,
    window_overlap: int = 64,
    chunk_words: int = 4096,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> ActivationStore:
    """Extract word-level activations of ``neuron_sets`` for ``corpus`` into the store at ``store_path``.

    ``model``: a :class:`~analysis.engine.models.LoadedModel` or a model directory. ``corpus``: a
    :class:`~analysis.engine.formats.Corpus` or a list of sentences (lists of words). A complete store with
    the same key is returned as is; a store left by a crashed run with the same plan is resumed after its last
    finished chunk. ``progress(words_done, words_total)`` is called after every batch; ``log(text)`` reports
    the plan, windowed and empty sentences, and resumption.
    """
    import torch

    from .models import LoadedModel, capture, load_model

    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, not {aggregation!r}")
    say = log or (lambda text: None)
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    if not isinstance(corpus, Corpus):
        corpus = Corpus(sentences=[list(s) for s in corpus])
    sentences = corpus.sentences
    tokenizer, net = loaded.tokenizer, loaded.model
    is_seq2seq = loaded.kind == "encoder-decoder"

    all_sites = loaded.neuron_sites()
    set_names = resolve_neuron_sets(all_sites, neuron_sets)
    sites = [site for name in set_names for site in all_sites[name]]
    set_specs = {name: {"layers": len(all_sites[name]), "units": all_sites[name][0].units} for name in set_names}

    label_names = corpus.label_names()
    label_ids = {name: i for i, name in enumerate(label_names)}
    n_words = corpus.n_words
    labels = np.full(n_words, -1, dtype=np.int32)
    if corpus.labels is not None:
        if len(corpus.labels) != len(sentences):
            raise ValueError(f"the corpus has {len(sentences)} sentences but {len(corpus.labels)} label lines")
        for i, (words, tags) in enumerate(zip(sentences, corpus.labels)):
            if len(words) != len(tags):
                raise ValueError(f"sentence {i} has {len(words)} words but {len(tags)} labels")
        flat = [label for sentence in corpus.labels for label in sentence]
        labels[:] = [label_ids[label] if label is not None else -1 for label in flat]

    # ---- plan
    max_tokens = model_max_tokens(loaded, max_length)
    specials = tokenizer.num_special_tokens_to_add(pair=False)
    budget = max_tokens - specials - (1 if is_seq2seq else 0)
    if budget < 1:
        raise ValueError(f"max_length {max_tokens} leaves no room for words next to {specials} special tokens")
    overlap = max(0, min(int(window_overlap), budget // 2))
    counts = subword_counts(tokenizer, sentences)
    segments: list[Segment] = []
    empty_sentences, windowed, cut_words, words_no_subword = [], [], [], []
    for s, word_counts in enumerate(counts):
        n = len(word_counts)
        total = int(word_counts.sum())
        words_no_subword.extend({"sentence": s, "word": int(w)} for w in np.flatnonzero(word_counts == 0))
        if n == 0:
            empty_sentences.append(s)
            continue
        if total <= budget:
            segments.append(Segment(s, 0, n, 0, n, total))
            continue
        windows = plan_windows(word_counts, budget, overlap)
        windowed.append({"sentence": s, "words": n, "subwords": total, "windows": len(windows)})
        for a, b, keep_a, keep_b in windows:
            segments.append(Segment(s, a, b, keep_a, keep_b, min(int(word_counts[a:b].sum()), budget)))
            if b - a == 1 and word_counts[a] > budget:
                cut_words.append({"sentence": s, "word": a, "subwords": int(word_counts[a]), "kept": budget})
    del counts
    segments.sort(key=lambda seg: (-seg.tokens, seg.sentence, seg.start))
    batches = plan_batches(segments, specials + (1 if is_seq2seq else 0), max_tokens_per_batch, max_sentences_per_batch)
    chunks = _group_chunks(batches, segments, chunk_words)

    corpus_hash = corpus.source_sha256 or corpus_sha256(sentences, corpus.labels)
    params = {
        "neuron_sets": set_names,
        "aggregation": aggregation,
        "max_length": max_tokens,
        "window_overlap": overlap,
        "dtype": str(loaded.dtype).replace("torch.", ""),
        "label_column": corpus.label_column,
    }
    key = store_key(loaded.info.sha256, corpus_hash, params)
    store_path = Path(store_path)
    existing = _complete_store(store_path, key)
    if existing is not None:
        say(f"activation store {key[:12]} is already complete; reusing it")
        if progress:
            progress(n_words, n_words)
        return existing

    plan_hash = hashlib.sha256(
        json.dumps(
            [key, max_tokens_per_batch, max_sentences_per_batch, chunk_words,
             [(g.sentence, g.start, g.end, g.keep_start, g.keep_end) for g in segments], batches, chunks]
        ).encode("utf-8")
    ).hexdigest()
    meta = {
        "key": key,
        "model": {
            "sha256": loaded.info.sha256, "model_type": loaded.info.model_type,
            "architecture": loaded.info.architecture, "kind": loaded.kind, "path": loaded.path,
        },
        "corpus_sha256": corpus_hash,
        "params": params,
        "batching": {"max_tokens_per_batch": max_tokens_per_batch, "max_sentences_per_batch": max_sentences_per_batch,
                     "chunk_words": chunk_words, "batches": len(batches), "chunks": len(chunks)},
        "versions": _versions(),
    }
    writer = StoreWriter(store_path, set_specs, sentences, labels, label_names, meta, plan_hash)

    if empty_sentences:
        say(f"{len(empty_sentences)} empty sentence(s) skipped (kept with 0 words): "
            f"{', '.join(map(str, empty_sentences[:20]))}{' ...' if len(empty_sentences) > 20 else ''}")
    for entry in windowed[:20]:
        say(f"sentence {entry['sentence']} has {entry['subwords']} subwords (model limit {max_tokens}): "
            f"split into {entry['windows']} overlapping windows")
    if len(windowed) > 20:
        say(f"... {len(windowed) - 20} more sentences windowed")
    for entry in cut_words[:20]:
        say(f"sentence {entry['sentence']} word {entry['word']} has {entry['subwords']} subwords: "
            f"only its first {entry['kept']} fit the model")
    if writer.done_chunks:
        say(f"resuming: {len(writer.done_chunks)} of {len(chunks)} chunks already done ({writer.words_done} words)")
    shapes = ", ".join(f"{name} ({spec['layers']}×{spec['units']})" for name, spec in set_specs.items())
    say(f"extracting {shapes} for "
        f"{n_words} words in {len(segments)} sequences, {len(batches)} batches, {len(chunks)} chunks "
        f"on {loaded.device}")

    # ---- run
    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sentences], out=offsets[1:])
    runner = getattr(net, "base_model", net) or net
    decoder_start = _decoder_start_id(net) if is_seq2seq else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = loaded.device
    enc_index = dec_index = None  # filled per batch, read by the hooks

    def keep_words(site, tensor):
        index = dec_index if site.neuron_set.startswith("dec.") else enc_index
        token_rows, word_slots, n_slots, counts_per_slot = index
        flat = tensor.reshape(-1, tensor.shape[-1])
        picked = flat.index_select(0, token_rows)
        if aggregation == "mean":
            summed = torch.zeros((n_slots, flat.shape[1]), dtype=picked.dtype, device=picked.device)
            summed.index_add_(0, word_slots, picked)
            picked = summed / counts_per_slot
        return picked.to(torch.float16).cpu()

    started = time.perf_counter()
    words_done = writer.words_done
    try:
        with torch.inference_mode(), capture(net, sites, transform=keep_words) as recorded:
            for chunk_number, chunk in enumerate(chunks):
                if chunk_number in writer.done_chunks:
                    continue
                chunk_words_count = 0
                for batch_number in chunk:
                    batch = _encode_batch(
                        tokenizer, sentences, [segments[i] for i in batches[batch_number]], offsets,
                        max_length=budget + specials, aggregation=aggregation, pad_id=pad_id,
                    )
                    enc_index = _index_tensors(batch, batch.token_rows, device, loaded.dtype)
                    model_inputs = {k: torch.from_numpy(v).to(device) for k, v in batch.inputs.items()}
                    if is_seq2seq:
                        # the decoder input is [start] + tokens: a token at (b, p) sits at (b, p + 1), width + 1 wide
                        dec_rows = batch.token_rows + 1 + batch.token_rows // batch.width
                        dec_index = _index_tensors(batch, dec_rows, device, loaded.dtype)
                        start_column = torch.full((batch.size, 1), decoder_start, dtype=torch.long, device=device)
                        model_inputs["decoder_input_ids"] = torch.cat([start_column, model_inputs["input_ids"]], 1)
                        model_inputs["decoder_attention_mask"] = torch.cat(
                            [torch.ones_like(start_column), model_inputs["attention_mask"]], 1
                        )
                        model_inputs.pop("token_type_ids", None)
                    if loaded.kind != "encoder":
                        model_inputs["use_cache"] = False  # no key/value cache: one pass, nothing generated
                    runner(**model_inputs)
                    for site in sites:
                        rows = recorded[site.key].numpy()
                        for row_start, slot_start, count in batch.row_spans:
                            writer.write_rows(site.neuron_set, site.layer, int(row_start),
                                              rows[slot_start : slot_start + count])
                    chunk_words_count += batch.n_slots
                    recorded.clear()
                    del model_inputs, batch
                    release_freed_memory()
                    if progress:
                        progress(words_done + chunk_words_count, n_words)
                writer.finish_chunk(chunk_number, chunk_words_count)
                words_done += chunk_words_count
    finally:
        writer.close()

    elapsed = time.perf_counter() - started
    report = {
        "empty_sentences": _capped(empty_sentences),
        "n_empty_sentences": len(empty_sentences),
        "windowed_sentences": _capped(windowed),
        "n_windowed_sentences": len(windowed),
        "cut_words": _capped(cut_words),
        "n_cut_words": len(cut_words),
        "words_without_subwords": _capped(words_no_subword),
        "n_words_without_subwords": len(words_no_subword),
    }
    if words_no_subword:
        say(f"{len(words_no_subword)} word(s) had no subword and took the nearest token")
    say(f"extraction finished: {words_done} words in {elapsed:.1f} s")
    return writer.complete({"report": report, "extraction_seconds": round(elapsed, 3)})


@dataclass
class _Batch:
    inputs: dict  # name -> int64 array [size, width], right-padded
    width: int
    token_rows: np.ndarray  # flat (b * width + position) of each token that feeds a kept word
    word_slots: np.ndarray  # the word slot each of those tokens belongs to
    slot_counts: np.ndarray  # tokens per word slot (for the mean)
    n_slots: int  # kept words in the batch, in batch order
    row_spans: list  # (store row of the first kept word, first slot, kept words) per segment

    @property
    def size(self) -> int:
        return self.inputs["input_ids"].shape[0]


def _encode_batch(tokenizer, sentences, batch: list[Segment], offsets, *, max_length, aggregation, pad_id) -> _Batch:
    words = [sentences[g.sentence][g.start : g.end] for g in batch]
    encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    width = max(len(ids) for ids in encoded["input_ids"])
    inputs = {"input_ids": np.full((len(batch), width), pad_id, dtype=np.int64),
              "attention_mask": np.zeros((len(batch), width), dtype=np.int64)}
    if "token_type_ids" in encoded:
        inputs["token_type_ids"] = np.zeros((len(batch), width), dtype=np.int64)
    token_rows, word_slots, row_spans = [], [], []
    n_slots = 0
    for b, segment in enumerate(batch):
        ids = encoded["input_ids"][b]
        inputs["input_ids"][b, : len(ids)] = ids
        inputs["attention_mask"][b, : len(ids)] = 1
        if "token_type_ids" in encoded:
            inputs["token_type_ids"][b, : len(ids)] = encoded["token_type_ids"][b]
        word_ids = encoded.word_ids(b)
        keep = range(segment.keep_start - segment.start, segment.keep_end - segment.start)
        positions, slots = _word_positions(
            word_ids, keep, aggregation, leading_special=bool(word_ids) and word_ids[0] is None
        )
        token_rows.extend(b * width + p for p in positions)
        word_slots.extend(n_slots + s for s in slots)
        row_spans.append((int(offsets[segment.sentence]) + segment.keep_start, n_slots, len(keep)))
        n_slots += len(keep)
    word_slots = np.asarray(word_slots, dtype=np.int64)
    return _Batch(
        inputs=inputs,
        width=width,
        token_rows=np.asarray(token_rows, dtype=np.int64),
        word_slots=word_slots,
        slot_counts=np.bincount(word_slots, minlength=n_slots).astype(np.float32),
        n_slots=n_slots,
        row_spans=row_spans,
    )


def _index_tensors(batch: _Batch, token_rows: np.ndarray, device, dtype):
    """What the hooks need: (token rows, word slot per row, number of slots, tokens per slot [slots, 1])."""
    import torch

    return (
        torch.as_tensor(token_rows, device=device),
        torch.as_tensor(batch.word_slots, device=device),
        batch.n_slots,
        torch.as_tensor(batch.slot_counts, device=device).to(dtype).unsqueeze(1),
    )


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> None:
    """Give freed heap memory back to the OS (glibc only).

    Batches allocate and free tens of MB of differently sized tensors; glibc keeps the freed blocks in a
    fragmented heap, so without this the resident set creeps up with the number of batches (measured: +30 %
    peak RSS for a corpus ×4) although nothing is kept. Trimming once per batch costs well under a millisecond.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _decoder_start_id(model) -> int:
    for source in (model.config, getattr(model, "generation_config", None)):
        value = getattr(source, "decoder_start_token_id", None) if source is not None else None
        if isinstance(value, int):
            return value
    value = getattr(model.config, "pad_token_id", None)
    if isinstance(value, int):
        return value
    raise ValueError("the encoder-decoder model names no decoder_start_token_id")


def _complete_store(path: Path, key: str) -> ActivationStore | None:
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if meta.get("status") == STATUS_COMPLETE and meta.get("key") == key:
        return ActivationStore.open(path)
    return None
