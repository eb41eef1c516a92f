"""Batched extraction of word-level activations into an :class:`~analysis.engine.store.ActivationStore`.

Three steps, each usable on its own:

* **Key** (:func:`extraction_key`): the store's content key from the model's recorded sha256, the corpus's
  sha256 and :class:`ExtractionParams` (everything that shapes the arrays). No model is loaded, so the pipeline
  can find a cached store without a GPU. A store lives in ``<root>/<key>/``, so two requests that differ in any
  parameter never share (or evict) a folder.
* **Plan** (:func:`plan_extraction`): a dry run that needs only the tokenizer and the config (the neuron sites
  come from a weightless copy of the model): words, subwords, windows, cut words, the store's disk bytes, a peak
  memory and a time estimate. Every sentence is tokenized once (fast tokenizer, ``is_split_into_words=True``)
  to count each word's subwords. Sentences whose tokens (plus special tokens) exceed the model's maximum become
  several overlapping *windows*; each word is taken from the window where it has most context (the largest
  distance, in words, to the window's nearer edge; ties go to the earlier window). Segments (whole sentences or
  windows) are sorted by token length, longest first, and packed into batches of at most
  ``max_tokens_per_batch`` padded tokens; consecutive batches form *chunks* of about ``chunk_words`` words, the
  unit of the store's crash journal, of progress and of cancellation.
* **Write** (:func:`extract_activations`): right padding with an attention mask, ``torch.inference_mode``, the
  model's base module (no LM head logits). Hooks on the neuron sites (:func:`analysis.engine.loading.neuron_sites`)
  keep only the word positions as soon as each layer is computed, convert them to float16 and hand them to the
  store, so memory per batch is bounded and nothing accumulates across batches.

Choices the brief left open:

* **Aggregation** of a word's subwords: ``first``, ``last`` (NeuroX's default) or ``mean``; special tokens are
  never part of a word.
* **Empty sentences** are kept with 0 words (their offsets are equal), never sent to the model, logged and listed
  in ``meta["report"]["empty_sentences"]``; labels and word indices stay aligned with the corpus.
* **Over-long sentences** are windowed (listed in ``report["windowed_sentences"]`` and logged), never dropped.
  A single word with more subwords than fit in one window keeps its first subwords (``report["cut_words"]``).
* **Words with no subwords** (e.g. a lone zero-width character that the normaliser deletes) get a zero vector
  in every set (there is no token to read; copying a neighbour's vector would make two words look identical);
  they are logged with their positions and listed in ``report["words_without_subwords"]``.
* **Encoder-decoder models**: ``enc.*`` sets are read on the source words; ``dec.*`` sets teacher-force the same
  words: the decoder input is ``[decoder_start] + source tokens``, and a word's decoder positions are those where
  its subwords are the decoder *input* (the representation after reading the word). methods.md also allows the
  model's own output when no reference exists; with word-level labels only the same words make sense.
* **Hidden layers** are raw block outputs (see :mod:`analysis.engine.loading`): the last layer has no final
  LayerNorm for GPT-2/Llama/T5, unlike ``output_hidden_states[-1]``.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .formats import Corpus
from .hashing import sha256_json
from .jobs import Cancelled, Job, as_job
from .store import ActivationStore, StoreWriter, data_bytes, open_complete, store_key
from .neurons import resolve_neuron_sets
from .subwords import AGGREGATIONS, word_positions

DTYPES = ("float32", "float16")
REPORT_LIST_LIMIT = 1000  # longer report lists are cut (their counts are kept)
# Effective forward-pass speed for the time estimate (2 × parameters × tokens operations), order of magnitude only.
# CPU measured: MiniLM-L6 on the UD EWT dev file (34k tokens, all hidden + MLP layers) took 105 s on 2 shared
# cores, 1.5e10/s. CUDA is assumed, not measured here.
ESTIMATE_FLOPS = {"cpu": 2e10, "cuda": 1e13}


@dataclass(frozen=True)
class ExtractionParams:
    """Everything that shapes a store's arrays. With the model's and the corpus's sha256 it makes the store key.

    ``neuron_sets``: names as requested (``hidden``/``mlp`` expand to ``enc.``/``dec.`` sets for
    encoder-decoders); ``max_length``: a cap below the model's own limit (None: the model's); ``window_overlap``:
    subwords shared by consecutive windows of an over-long sentence; ``dtype``: what the model runs in
    (``float16`` only on CUDA, see :func:`analysis.engine.loading.dtype_name`); ``label_column``: the corpus's
    label column, which decides the stored labels. Batching options are not here: they change the speed, not
    the arrays.
    """

    neuron_sets: tuple[str, ...] = ("hidden", "mlp")
    aggregation: str = "last"
    max_length: int | None = None
    window_overlap: int = 64
    dtype: str = "float32"
    label_column: str = ""

    def __post_init__(self):
        if isinstance(self.neuron_sets, str):
            object.__setattr__(self, "neuron_sets", (self.neuron_sets,))
        object.__setattr__(self, "neuron_sets", tuple(self.neuron_sets))
        if not self.neuron_sets:
            raise ValueError("choose at least one neuron set")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, not {self.aggregation!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.max_length is not None and int(self.max_length) < 1:
            raise ValueError(f"max_length must be a positive number of tokens, not {self.max_length}")
        if int(self.window_overlap) < 0:
            raise ValueError(f"window_overlap must be 0 or more subwords, not {self.window_overlap}")

    def key_fields(self) -> dict:
        """The parameters as they enter the key: the set order does not change the arrays, so it is sorted."""
        fields = asdict(self)
        fields["neuron_sets"] = sorted(set(self.neuron_sets))
        return fields


def corpus_sha256(corpus: Corpus) -> str:
    """The corpus's recorded file hash, else a hash of its words and labels (a corpus built in memory)."""
    return corpus.source_sha256 or sha256_json([corpus.sentences, corpus.labels])


# Bump when the same model, corpus and parameters give different arrays (2: a word without subwords gets a zero
# row, not its neighbour's), so stores made by the older extractor are not reused as if they were current.
EXTRACTOR_VERSION = 2


def extraction_key(model_sha256: str, corpus_sha256: str, params: ExtractionParams) -> str:
    """The content key (and folder name) of the store for this model, corpus and parameters; loads nothing."""
    if not model_sha256 or not corpus_sha256:
        raise ValueError("a store key needs the model's and the corpus's sha256")
    return store_key(model_sha256, corpus_sha256, {**params.key_fields(), "extractor": EXTRACTOR_VERSION})


def as_corpus(corpus) -> Corpus:
    return corpus if isinstance(corpus, Corpus) else Corpus(sentences=[list(s) for s in corpus])


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


def subword_counts(tokenizer, sentences: Sequence[Sequence[str]], batch: int = 1000) -> list[np.ndarray]:
    """Per sentence, the number of subwords of each word (0 for a word the tokenizer deletes)."""
    counts = []
    for start in range(0, len(sentences), batch):
        part = [list(s) for s in sentences[start : start + batch]]
        nonempty = [i for i, s in enumerate(part) if s]
        # verbose=False: counting whole sentences is not feeding them to the model (long ones are windowed), so
        # transformers' "Token indices sequence length is longer than the specified maximum" would mislead
        encoded = tokenizer([part[i] for i in nonempty], is_split_into_words=True, add_special_tokens=False,
                            verbose=False)
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


def _check_labels(corpus: Corpus) -> None:
    if corpus.labels is None:
        return
    if len(corpus.labels) != len(corpus.sentences):
        raise ValueError(f"the corpus has {len(corpus.sentences)} sentences but {len(corpus.labels)} label lines")
    for i, (words, tags) in enumerate(zip(corpus.sentences, corpus.labels)):
        if len(words) != len(tags):
            raise ValueError(f"sentence {i} has {len(words)} words but {len(tags)} labels")


def _word_labels(corpus: Corpus) -> tuple[list[str], np.ndarray]:
    """(sorted label names, int32 label id per word, -1 for a missing label or an unlabelled corpus)."""
    label_names = corpus.label_names()
    labels = np.full(corpus.n_words, -1, dtype=np.int32)
    if corpus.labels is not None:
        label_ids = {name: i for i, name in enumerate(label_names)}
        flat = [label for sentence in corpus.labels for label in sentence]
        labels[:] = [label_ids[label] if label is not None else -1 for label in flat]
    return label_names, labels


@dataclass
class ExtractionPlan:
    """What an extraction will do and cost, before any weight is read. :meth:`summary` is the JSON for a form."""

    n_sentences: int
    n_words: int
    n_subwords: int  # subwords of all words, without special tokens or window overlaps
    model_tokens: int  # tokens the model runs on: subwords in every window plus special tokens
    neuron_sets: dict[str, dict]  # resolved set name -> {"layers", "units"}
    max_tokens: int  # tokens per sequence (the model's limit or max_length)
    window_overlap: int  # the overlap actually used (at most half a window)
    specials: int  # special tokens around each sequence
    budget: int  # word subwords that fit in one sequence
    disk_bytes: int  # the store's arrays and word files, exactly (meta.json and the journal add a few kB)
    peak_memory_bytes: int  # rough: weights + the largest batch's working memory, on the model's device
    seconds_estimate: float  # rough: forward-pass operations / ESTIMATE_FLOPS of the device
    device: str
    empty_sentences: list[int] = field(default_factory=list)
    windowed: list[dict] = field(default_factory=list)
    cut_words: list[dict] = field(default_factory=list)
    words_without_subwords: list[dict] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list, repr=False)
    batches: list[list[int]] = field(default_factory=list, repr=False)
    chunks: list[list[int]] = field(default_factory=list, repr=False)
    batching: dict = field(default_factory=dict)

    @property
    def n_windows(self) -> int:
        """Sequences sent to the model for windowed sentences."""
        return sum(entry["windows"] for entry in self.windowed)

    def fingerprint(self, key: str) -> str:
        """Identifies the work split (a resumed store must have been written with the same one)."""
        return sha256_json([key, self.batching, [(g.sentence, g.start, g.end, g.keep_start, g.keep_end)
                                                 for g in self.segments], self.batches, self.chunks])

    def report(self) -> dict:
        return {
            "empty_sentences": _capped(self.empty_sentences),
            "n_empty_sentences": len(self.empty_sentences),
            "windowed_sentences": _capped(self.windowed),
            "n_windowed_sentences": len(self.windowed),
            "cut_words": _capped(self.cut_words),
            "n_cut_words": len(self.cut_words),
            "words_without_subwords": _capped(self.words_without_subwords),
            "n_words_without_subwords": len(self.words_without_subwords),
        }

    def summary(self) -> dict:
        return {
            "sentences": self.n_sentences, "words": self.n_words, "subwords": self.n_subwords,
            "model_tokens": self.model_tokens, "neuron_sets": self.neuron_sets, "max_tokens": self.max_tokens,
            "window_overlap": self.window_overlap, "windowed_sentences": len(self.windowed),
            "windows": self.n_windows, "cut_words": len(self.cut_words),
            "empty_sentences": len(self.empty_sentences),
            "words_without_subwords": len(self.words_without_subwords), "sequences": len(self.segments),
            "batches": len(self.batches), "chunks": len(self.chunks), "disk_bytes": self.disk_bytes,
            "peak_memory_bytes": self.peak_memory_bytes, "seconds_estimate": round(self.seconds_estimate, 1),
            "device": self.device,
        }


def _make_plan(tokenizer, config, kind: str, sites: dict, n_parameters: int, device, corpus: Corpus,
               params: ExtractionParams, batching: dict) -> ExtractionPlan:
    from .loading import model_max_tokens

    _check_labels(corpus)
    sentences = corpus.sentences
    is_seq2seq = kind == "encoder-decoder"
    set_names = resolve_neuron_sets(sites, params.neuron_sets)
    set_specs = {name: {"layers": len(sites[name]), "units": sites[name][0].units} for name in set_names}
    max_tokens = model_max_tokens(tokenizer, config, params.max_length)
    specials = tokenizer.num_special_tokens_to_add(pair=False)
    budget = max_tokens - specials - (1 if is_seq2seq else 0)
    if budget < 1:
        raise ValueError(f"max_length {max_tokens} leaves no room for words next to {specials} special tokens")
    overlap = max(0, min(int(params.window_overlap), budget // 2))

    segments: list[Segment] = []
    empty_sentences, windowed, cut_words, words_no_subword = [], [], [], []
    n_subwords = 0
    for s, word_counts in enumerate(subword_counts(tokenizer, sentences)):
        n = len(word_counts)
        total = int(word_counts.sum())
        n_subwords += total
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
    segments.sort(key=lambda seg: (-seg.tokens, seg.sentence, seg.start))
    extra = specials + (1 if is_seq2seq else 0)
    batches = plan_batches(segments, extra, batching["max_tokens_per_batch"], batching["max_sentences_per_batch"])
    chunks = _group_chunks(batches, segments, batching["chunk_words"])

    model_tokens = sum(seg.tokens + extra for seg in segments)
    device = str(getattr(device, "type", device))
    value_bytes = 2 if params.dtype == "float16" else 4
    # the largest batch: padded tokens × (residual stream, attention and FFN intermediates), plus the kept words
    widest = max((len(batch) * (segments[batch[0]].tokens + extra) for batch in batches), default=0)
    widths = [site_list[0].units for site_list in sites.values()]
    hidden, ffn = min(widths), max(widths)  # residual stream and FFN width, near enough for an estimate
    captured_units = sum(spec["layers"] * spec["units"] for spec in set_specs.values())
    peak = n_parameters * value_bytes + widest * (8 * hidden + 2 * ffn) * value_bytes
    peak += widest * captured_units * (value_bytes + 2)
    flops = 2.0 * n_parameters * model_tokens
    return ExtractionPlan(
        n_sentences=len(sentences), n_words=corpus.n_words, n_subwords=n_subwords, model_tokens=model_tokens,
        neuron_sets=set_specs, max_tokens=max_tokens, window_overlap=overlap, specials=specials, budget=budget,
        disk_bytes=data_bytes(sentences, set_specs), peak_memory_bytes=int(peak),
        seconds_estimate=flops / ESTIMATE_FLOPS.get(device, ESTIMATE_FLOPS["cpu"]), device=device,
        empty_sentences=empty_sentences, windowed=windowed, cut_words=cut_words,
        words_without_subwords=words_no_subword, segments=segments, batches=batches, chunks=chunks,
        batching=dict(batching),
    )


def _batching(max_tokens_per_batch: int, max_sentences_per_batch: int, chunk_words: int) -> dict:
    return {"max_tokens_per_batch": int(max_tokens_per_batch), "max_sentences_per_batch": int(max_sentences_per_batch),
            "chunk_words": int(chunk_words)}


def plan_extraction(model, corpus, params: ExtractionParams | None = None, *, device=None,
                    max_tokens_per_batch: int = 4096, max_sentences_per_batch: int = 256,
                    chunk_words: int = 4096) -> ExtractionPlan:
    """The dry run of :func:`extract_activations`: the same plan, from the tokenizer and config only.

    ``model``: a model directory (its weights are neither read nor hashed), a
    :class:`~analysis.engine.loading.ModelOutline` or a loaded model. ``device``: where the extraction would run,
    for the memory and time estimates (default: CUDA when there is one).
    """
    from .loading import LoadedModel, ModelOutline, load_outline, pick_device

    params = params or ExtractionParams()
    corpus = as_corpus(corpus)
    batching = _batching(max_tokens_per_batch, max_sentences_per_batch, chunk_words)
    if isinstance(model, LoadedModel):
        return _make_plan(model.tokenizer, model.model.config, model.kind, model.neuron_sites(),
                          model.info.n_parameters, model.device, corpus, params, batching)
    outline = model if isinstance(model, ModelOutline) else load_outline(model)
    return _make_plan(outline.tokenizer, outline.config, outline.kind, outline.sites, outline.info.n_parameters,
                      pick_device(device), corpus, params, batching)


# ---------------------------------------------------------------------------------------------- extraction


def extract_activations(
    model,
    corpus,
    store_root,
    params: ExtractionParams | None = None,
    *,
    max_tokens_per_batch: int = 4096,
    max_sentences_per_batch: int = 256,
    chunk_words: int = 4096,
    job: Job | None = None,
) -> ActivationStore:
    """Extract word-level activations for ``corpus`` into the store ``<store_root>/<key>/``.

    ``model``: a :class:`~analysis.engine.loading.LoadedModel` or a model directory (hashed, then loaded only
    when the store is not already complete). ``corpus``: a :class:`~analysis.engine.formats.Corpus` or a list of
    sentences (lists of words); a Corpus's ``label_column`` must be ``params.label_column``. A complete store
    with the same key is returned as is; a store left by a crashed or cancelled run with the same plan is
    resumed after its last finished chunk. ``job``: progress in ``"words"`` after every batch, the plan and
    reports in its log, and a cancellation check before every chunk (:class:`~analysis.engine.jobs.Cancelled`
    leaves the store unfinished, so nothing trusts it until a re-run completes it).
    """
    from .loading import LoadedModel, load_model
    from .modeldir import inspect_model_dir

    params = params or ExtractionParams()
    job = as_job(job)
    corpus = as_corpus(corpus)
    if corpus.label_column != params.label_column:
        raise ValueError(f"the corpus was read with label column {corpus.label_column!r} but the parameters name "
                         f"{params.label_column!r}")
    _check_labels(corpus)
    is_loaded = isinstance(model, LoadedModel)
    model_sha256 = model.info.sha256 if is_loaded else inspect_model_dir(model).sha256
    key = extraction_key(model_sha256, corpus_sha256(corpus), params)
    path = Path(store_root) / key
    existing = open_complete(path, key)
    if existing is not None:
        job.log(f"activation store {key[:12]} is already complete; reusing it")
        job.progress(existing.n_words, existing.n_words, "words")
        return existing

    if is_loaded:
        loaded = model
    else:
        loaded = load_model(model, half=params.dtype == "float16", sha256=model_sha256)
        job.log(f"model: {loaded.info.architecture} ({loaded.kind}), {loaded.info.n_layers} layers, "
                f"hidden {loaded.info.hidden_size}, on {loaded.device}")
    running = str(loaded.dtype).replace("torch.", "")
    if running != params.dtype:
        raise ValueError(f"the model runs in {running} but the parameters ask for {params.dtype} "
                         "(float16 needs the model loaded with half=True on a CUDA device)")
    plan = _make_plan(loaded.tokenizer, loaded.model.config, loaded.kind, loaded.neuron_sites(),
                      loaded.info.n_parameters, loaded.device, corpus, params,
                      _batching(max_tokens_per_batch, max_sentences_per_batch, chunk_words))
    return _write_store(loaded, corpus, plan, path, key, params, job)


def _log_plan(plan: ExtractionPlan, job: Job, device) -> None:
    if plan.empty_sentences:
        shown = ", ".join(map(str, plan.empty_sentences[:20]))
        job.log(f"{len(plan.empty_sentences)} empty sentence(s) skipped (kept with 0 words): "
                f"{shown}{' ...' if len(plan.empty_sentences) > 20 else ''}")
    for entry in plan.windowed[:20]:
        job.log(f"sentence {entry['sentence']} has {entry['subwords']} subwords (model limit {plan.max_tokens}): "
                f"split into {entry['windows']} overlapping windows")
    if len(plan.windowed) > 20:
        job.log(f"... {len(plan.windowed) - 20} more sentences windowed")
    for entry in plan.cut_words[:20]:
        job.log(f"sentence {entry['sentence']} word {entry['word']} has {entry['subwords']} subwords: "
                f"only its first {entry['kept']} fit the model")
    shapes = ", ".join(f"{name} ({spec['layers']}×{spec['units']})" for name, spec in plan.neuron_sets.items())
    job.log(f"extracting {shapes} for {plan.n_words} words in {len(plan.segments)} sequences, "
            f"{len(plan.batches)} batches, {len(plan.chunks)} chunks on {device}")


def _write_store(loaded, corpus: Corpus, plan: ExtractionPlan, path: Path, key: str, params: ExtractionParams,
                 job: Job) -> ActivationStore:
    """Run the model over the plan's batches and write the store chunk by chunk (see the module docstring)."""
    import torch

    from .loading import capture, pad_token_id

    sentences = corpus.sentences
    label_names, labels = _word_labels(corpus)
    tokenizer, net = loaded.tokenizer, loaded.model
    is_seq2seq = loaded.kind == "encoder-decoder"
    all_sites = loaded.neuron_sites()
    sites = [site for name in plan.neuron_sets for site in all_sites[name]]
    segments, batches, chunks, n_words = plan.segments, plan.batches, plan.chunks, plan.n_words
    aggregation = params.aggregation
    meta = {
        "key": key,
        "model": {
            "sha256": loaded.info.sha256, "model_type": loaded.info.model_type,
            "architecture": loaded.info.architecture, "kind": loaded.kind, "path": loaded.path,
        },
        "corpus_sha256": corpus_sha256(corpus),
        "params": params.key_fields(),
        "resolved": {"neuron_sets": list(plan.neuron_sets), "max_length": plan.max_tokens,
                     "window_overlap": plan.window_overlap},
        "batching": dict(plan.batching, batches=len(batches), chunks=len(chunks)),
        "plan": plan.summary(),
        "versions": _versions(),
    }
    writer = StoreWriter(path, plan.neuron_sets, sentences, labels, label_names, meta, plan.fingerprint(key))
    _log_plan(plan, job, loaded.device)
    if writer.done_chunks:
        job.log(f"resuming: {len(writer.done_chunks)} of {len(chunks)} chunks already done "
                f"({writer.words_done} words)")
        job.progress(writer.words_done, n_words, "words")

    offsets = np.zeros(len(sentences) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in sentences], out=offsets[1:])
    runner = getattr(net, "base_model", net) or net
    decoder_start = _decoder_start_id(net) if is_seq2seq else None
    pad_id = pad_token_id(tokenizer)
    device = loaded.device
    enc_index = dec_index = None  # filled per batch, read by the hooks

    def keep_words(site, tensor):
        index = dec_index if site.neuron_set.startswith("dec.") else enc_index
        token_rows, word_slots, n_slots, counts_per_slot = index
        flat = tensor.reshape(-1, tensor.shape[-1])
        picked = flat.index_select(0, token_rows)
        if aggregation == "mean" or picked.shape[0] != n_slots:  # a word without subwords: a zero row
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
                job.check_cancelled()
                chunk_words_count = 0
                for batch_number in chunk:
                    batch = _encode_batch(
                        tokenizer, sentences, [segments[i] for i in batches[batch_number]], offsets,
                        max_length=plan.budget + plan.specials, aggregation=aggregation, pad_id=pad_id,
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
                    job.progress(words_done + chunk_words_count, n_words, "words")
                writer.finish_chunk(chunk_number, chunk_words_count)
                words_done += chunk_words_count
    except Cancelled:
        job.log(f"extraction cancelled after {len(writer.done_chunks)} of {len(chunks)} chunks; "
                "the store stays unfinished and a re-run resumes it")
        raise
    finally:
        writer.close()

    elapsed = time.perf_counter() - started
    if plan.words_without_subwords:
        shown = ", ".join(f"sentence {e['sentence']} word {e['word']}" for e in plan.words_without_subwords[:20])
        more = " ..." if len(plan.words_without_subwords) > 20 else ""
        job.log(f"warning: {len(plan.words_without_subwords)} word(s) have no subword (the tokenizer deletes "
                f"them) and were given a zero vector: {shown}{more}")
    job.log(f"extraction finished: {words_done} words in {elapsed:.1f} s")
    return writer.complete({"report": plan.report(), "extraction_seconds": round(elapsed, 3)})


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
        positions, slots = word_positions(
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
        torch.as_tensor(batch.slot_counts, device=device).clamp(min=1).to(dtype).unsqueeze(1),
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
