"""Extraction into the activation store on tiny models: alignment, aggregation, batching, resume, edge cases."""

import logging

import numpy as np
import pytest
import torch

from analysis.engine.extract import (
    ExtractionParams,
    corpus_sha256,
    extract_activations,
    extraction_key,
    plan_extraction,
    plan_windows,
)
from analysis.engine.formats import Corpus
from analysis.engine.jobs import Cancelled, Job
from analysis.engine.loading import load_model
from analysis.engine.modeldir import inspect_model_dir
from analysis.engine.store import ActivationStore, StoreError, open_complete
from analysis.engine.subwords import word_activations
from tests.support.tiny_models import tiny_model_dir

torch.set_num_threads(1)

SENTENCES = [
    ["The", "cat", "sat", "on", "the", "mat", "."],
    ["Tokenization", "is", "unbelievably", "hard"],
    ["Hi"],
    ["A", "dog", "ran", "to", "the", "park", "and", "barked", "loudly", "at", "everyone", "there", "."],
    ["Green", "tea", "?"],
]
TOLERANCE = dict(rtol=2e-3, atol=2e-3)  # float16 storage


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = load_model(tiny_model_dir(arch))
        return cache[arch]

    return get


def _count_forwards(loaded):
    calls = []
    handle = loaded.model.base_model.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


def _arrays(store):
    return {(name, layer): np.asarray(store.array(name, layer), dtype=np.float32)
            for name, spec in store.neuron_sets.items() for layer in range(spec["layers"])}


@pytest.mark.parametrize("arch", ["bert", "gpt2", "t5"])
def test_batched_equals_one_sentence_at_a_time(models, tmp_path, arch):
    loaded = models(arch)
    batched = extract_activations(loaded, SENTENCES, tmp_path / "batched")
    calls, handle = _count_forwards(loaded)
    single = extract_activations(loaded, SENTENCES, tmp_path / "single", max_sentences_per_batch=1)
    handle.remove()
    assert len(calls) == len(SENTENCES)
    assert batched.meta["batching"]["batches"] < len(SENTENCES)  # padding really happened in the batched run
    single_arrays = _arrays(single)
    for key, values in _arrays(batched).items():
        np.testing.assert_allclose(values, single_arrays[key], **TOLERANCE, err_msg=str(key))
    expected_sets = {"bert": {"hidden", "mlp"}, "gpt2": {"hidden", "mlp"},
                     "t5": {"enc.hidden", "enc.mlp", "dec.hidden", "dec.mlp"}}[arch]
    assert set(batched.neuron_sets) == expected_sets


@pytest.mark.parametrize("aggregation", ["first", "last", "mean"])
def test_aggregation_over_subwords_matches_manual_computation(models, tmp_path, aggregation):
    loaded = models("bert")
    words = ["the", "unbelievably", "tokenization", "cat"]
    store = extract_activations(loaded, [words], tmp_path, ExtractionParams(aggregation=aggregation))

    encoded = loaded.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    word_ids = encoded.word_ids(0)
    with torch.inference_mode():
        states = loaded.model(**encoded, output_hidden_states=True).hidden_states
    positions = [[p for p, w in enumerate(word_ids) if w == i] for i in range(len(words))]
    assert [len(p) for p in positions] == [1, 5, 2, 1]
    pick = {"first": lambda t, p: t[p[0]], "last": lambda t, p: t[p[-1]], "mean": lambda t, p: t[p].mean(0)}
    for layer, state in enumerate(states):
        expected = torch.stack([pick[aggregation](state[0], p) for p in positions]).numpy()
        np.testing.assert_allclose(np.asarray(store.array("hidden", layer), dtype=np.float32), expected, **TOLERANCE)
        # the single-sentence helper (used by manipulation) aggregates the same way
        np.testing.assert_allclose(word_activations(state[0], word_ids, len(words), aggregation).numpy(), expected,
                                   rtol=1e-6, atol=1e-6)
    assert store.meta["params"]["aggregation"] == aggregation


def test_aggregation_modes_differ_only_on_split_words(models, tmp_path):
    loaded = models("bert")
    words = [["the", "unbelievably", "cat"]]
    rows = {mode: np.asarray(extract_activations(loaded, words, tmp_path, ExtractionParams(
                aggregation=mode, neuron_sets=["mlp"])).array("mlp", 1), dtype=np.float32)
            for mode in ("first", "last", "mean")}
    for a, b in [("first", "last"), ("first", "mean"), ("last", "mean")]:
        assert not np.allclose(rows[a][1], rows[b][1], atol=1e-3)  # the 5-subword word
        np.testing.assert_array_equal(rows[a][[0, 2]], rows[b][[0, 2]])  # single-subword words


def test_decoder_sets_teacher_force_the_same_words(models, tmp_path):
    loaded = models("t5")
    words = ["Tokenization", "is", "hard"]
    store = extract_activations(loaded, [words], tmp_path, ExtractionParams(neuron_sets=["dec.hidden"]))
    assert list(store.neuron_sets) == ["dec.hidden"]
    ids = loaded.tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    last_subword = {}
    for position, word in enumerate(ids.word_ids()):
        last_subword[word] = ids["input_ids"][position]
    embeddings = loaded.model.get_decoder().embed_tokens.weight.detach()
    expected = embeddings[[last_subword[i] for i in range(len(words))]].numpy()
    # decoder layer 0 at a word's positions is the embedding of the word's own subword (the decoder input)
    np.testing.assert_allclose(np.asarray(store.array("dec.hidden", 0), dtype=np.float32), expected, **TOLERANCE)


def test_an_encoder_decoder_store_reads_hidden_as_both_sides(models, tmp_path):
    """A run asks for "hidden" whatever the model; an encoder-decoder's store names it enc.hidden and dec.hidden,
    and its rankings and statistics read both (they failed with "no neuron set 'hidden'")."""
    store = extract_activations(models("t5"), [["a", "cat", "sat"]], tmp_path, ExtractionParams(neuron_sets=["hidden"]))
    features = store.features("hidden", layers=[1])
    assert sorted({n.set for n in features.neuron_ids}) == ["dec.hidden", "enc.hidden"]
    assert [n.set for n in store.features(["enc.hidden"]).neuron_ids][0] == "enc.hidden"
    with pytest.raises(KeyError, match="no neuron set 'mlp'"):
        store.features("mlp")


def test_resume_after_a_crash_skips_finished_chunks(models, tmp_path):
    loaded = models("gpt2")
    options = dict(max_sentences_per_batch=1, chunk_words=1)  # one sentence per batch, one batch per chunk
    clean = _arrays(extract_activations(loaded, SENTENCES, tmp_path / "clean", **options))

    class Crash(RuntimeError):
        pass

    reports = []

    def crash_on_third_batch(done, total, unit):
        reports.append(done)
        if len(reports) == 3:
            raise Crash("worker died")

    with pytest.raises(Crash):
        extract_activations(loaded, SENTENCES, tmp_path / "store", job=Job(on_progress=crash_on_third_batch),
                            **options)
    (folder,) = (tmp_path / "store").iterdir()
    with pytest.raises(Exception, match="incomplete"):
        ActivationStore.open(folder)

    logs = []
    calls, handle = _count_forwards(loaded)
    resumed = extract_activations(loaded, SENTENCES, tmp_path / "store", job=Job(on_log=logs.append), **options)
    handle.remove()
    assert len(calls) == len(SENTENCES) - 2  # two chunks were journalled before the crash
    assert any("resuming: 2 of 5 chunks" in line for line in logs)
    for key, values in _arrays(resumed).items():
        np.testing.assert_array_equal(values, clean[key])


def test_complete_store_is_reused_without_forward_passes(models, tmp_path):
    loaded = models("bert")
    first = extract_activations(loaded, SENTENCES, tmp_path / "s")
    calls, handle = _count_forwards(loaded)
    again = extract_activations(loaded, SENTENCES, tmp_path / "s")
    handle.remove()
    assert calls == [] and again.meta["key"] == first.meta["key"]
    assert first.path == tmp_path / "s" / first.meta["key"]


@pytest.mark.parametrize("change", [dict(aggregation="first"), dict(max_length=8), dict(window_overlap=2),
                                    dict(neuron_sets=("hidden",))])
def test_stores_that_differ_in_one_parameter_coexist(models, tmp_path, change):
    loaded = models("bert")
    first = extract_activations(loaded, SENTENCES, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in first.path.iterdir()}
    other = extract_activations(loaded, SENTENCES, tmp_path, ExtractionParams(**change))
    assert other.path != first.path and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [first.path.name, other.path.name])
    # the first store is untouched and still opens as complete
    assert {p.name: p.stat().st_mtime_ns for p in first.path.iterdir()} == before
    assert ActivationStore.open(first.path).meta["key"] == first.meta["key"]


def test_labels_progress_and_metadata(models, tmp_path):
    corpus = Corpus(
        sentences=[["the", "cat"], ["runs", "fast", "!"]],
        labels=[["DET", "NOUN"], ["VERB", None, "PUNCT"]],
        source_sha256="c" * 64,
        label_column="upos",
    )
    progress = []
    store = extract_activations(tiny_model_dir("bert"), corpus, tmp_path / "s", ExtractionParams(label_column="upos"),
                                job=Job(on_progress=lambda *report: progress.append(report)))
    assert store.label_names == ["DET", "NOUN", "PUNCT", "VERB"]
    np.testing.assert_array_equal(store.labels, [0, 1, 3, -1, 2])
    assert progress[-1] == (5, 5, "words") and progress == sorted(progress)
    meta = store.meta
    assert meta["corpus_sha256"] == "c" * 64
    assert meta["model"]["sha256"] == load_model(tiny_model_dir("bert")).info.sha256
    assert {"torch", "transformers", "numpy"} <= set(meta["versions"])
    assert meta["params"]["neuron_sets"] == ["hidden", "mlp"]


def test_empty_sentences_are_kept_with_zero_words(models, tmp_path):
    loaded = models("bert")
    with_empty = [[], SENTENCES[0], [], SENTENCES[2], []]
    logs = []
    store = extract_activations(loaded, with_empty, tmp_path / "empty", job=Job(on_log=logs.append))
    reference = extract_activations(loaded, [SENTENCES[0], SENTENCES[2]], tmp_path / "reference")
    np.testing.assert_array_equal(store.sentence_offsets, [0, 0, 7, 7, 8, 8])
    assert store.sentence(1) == SENTENCES[0] and store.sentence(2) == []
    assert store.meta["report"]["empty_sentences"] == [0, 2, 4]
    assert any("3 empty sentence(s)" in line for line in logs)
    np.testing.assert_array_equal(store.array("mlp", 1), reference.array("mlp", 1))


def test_over_long_sentences_are_windowed_not_dropped(models, tmp_path):
    loaded = models("bert")
    long_sentence = [f"w{i % 10}" if i % 3 else "the" for i in range(40)]
    logs = []
    store = extract_activations(loaded, [["short", "one"], long_sentence], tmp_path / "long",
                                ExtractionParams(max_length=16, window_overlap=4), job=Job(on_log=logs.append))
    report = store.meta["report"]
    assert report["n_windowed_sentences"] == 1 and report["windowed_sentences"][0]["sentence"] == 1
    assert any("split into" in line and "overlapping windows" in line for line in logs)
    assert store.n_words == 42
    hidden = np.asarray(store.array("hidden", 2), dtype=np.float32)
    assert np.all(np.abs(hidden).sum(axis=1) > 0)  # every word got values

    counts = np.array([len(loaded.tokenizer(w, add_special_tokens=False)["input_ids"]) for w in long_sentence])
    first_window = plan_windows(counts, 16 - 2, 4)[0]
    alone = extract_activations(loaded, [long_sentence[: first_window[1]]], tmp_path / "alone")
    kept = first_window[3]
    np.testing.assert_allclose(hidden[2 : 2 + kept], np.asarray(alone.array("hidden", 2), dtype=np.float32)[:kept],
                               **TOLERANCE)


def test_window_plan_keeps_every_word_once_from_its_best_window():
    counts = np.ones(25, dtype=np.int32)
    windows = plan_windows(counts, budget=10, overlap=4)
    assert all(counts[a:b].sum() <= 10 for a, b, _, _ in windows)
    kept = [w for _, _, keep_a, keep_b in windows for w in range(keep_a, keep_b)]
    assert kept == list(range(25))
    assert windows[0][:2] == (0, 10) and windows[1][:2] == (6, 16)
    assert windows[0][3] == 8  # word 7 is nearer the middle of window 0, word 8 of window 1
    long_word = plan_windows(np.array([2, 30, 2]), budget=10, overlap=2)
    assert [(a, b) for a, b, _, _ in long_word] == [(0, 1), (1, 2), (2, 3)]


def test_cut_words_and_words_without_subwords_are_reported(models, tmp_path, caplog):
    loaded = models("bert")
    sentence = ["the", "\u200b", "cat", "unbelievably" * 4]
    logged = []
    with caplog.at_level(logging.WARNING):
        store = extract_activations(loaded, [sentence], tmp_path / "odd", ExtractionParams(max_length=8),
                                    job=Job(on_log=logged.append))
    assert not [r for r in caplog.records if "Token indices sequence length" in r.getMessage()]
    assert any("1 word(s) have no subword" in line and "sentence 0 word 1" in line and "zero vector" in line
               for line in logged)
    report = store.meta["report"]
    assert report["words_without_subwords"] == [{"sentence": 0, "word": 1}]
    assert report["cut_words"][0]["word"] == 3 and report["cut_words"][0]["kept"] == 6
    hidden = np.asarray(store.array("hidden", 1), dtype=np.float32)
    # the deleted word has no token to read: a zero row, not a copy of its neighbour
    np.testing.assert_array_equal(hidden[1], np.zeros_like(hidden[1]))
    assert np.abs(hidden[0]).sum() > 0 and np.abs(hidden[2]).sum() > 0


def test_unknown_neuron_set_and_aggregation_are_refused(models, tmp_path):
    with pytest.raises(ValueError, match="unknown neuron set 'attention'"):
        extract_activations(models("bert"), SENTENCES, tmp_path / "x", ExtractionParams(neuron_sets=["attention"]))
    with pytest.raises(ValueError, match="aggregation must be one of"):
        ExtractionParams(aggregation="max")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("arch", ["llama", "bart", "marian"])
def test_other_architectures_extract_every_set(models, tmp_path, arch):
    store = extract_activations(models(arch), SENTENCES[:3], tmp_path / arch)
    n_words = sum(len(s) for s in SENTENCES[:3])
    for name, spec in store.neuron_sets.items():
        assert spec["units"] == (32 if name.endswith("hidden") else 64)
        for layer in range(spec["layers"]):
            values = np.asarray(store.array(name, layer), dtype=np.float32)
            assert values.shape == (n_words, spec["units"]) and np.isfinite(values).all()
            assert np.abs(values).sum(axis=1).min() > 0


# ---------------------------------------------------------------------------------------------- key, plan, job


def test_every_parameter_and_both_hashes_change_the_key():
    base = ExtractionParams()
    key = extraction_key("m" * 64, "c" * 64, base)
    changes = [dict(neuron_sets=("hidden",)), dict(aggregation="first"), dict(max_length=128),
               dict(window_overlap=8), dict(dtype="float16"), dict(label_column="upos")]
    keys = {extraction_key("m" * 64, "c" * 64, ExtractionParams(**change)) for change in changes}
    keys |= {extraction_key("x" * 64, "c" * 64, base), extraction_key("m" * 64, "x" * 64, base)}
    assert key not in keys and len(keys) == len(changes) + 2
    # what does not change the arrays does not change the key: the order of the sets
    assert extraction_key("m" * 64, "c" * 64, ExtractionParams(neuron_sets=("mlp", "hidden"))) == key
    with pytest.raises(ValueError, match="needs the model's and the corpus's sha256"):
        extraction_key("", "c" * 64, base)


def test_a_new_extractor_version_does_not_reuse_older_stores(monkeypatch):
    from analysis.engine import extract

    key = extraction_key("m" * 64, "c" * 64, ExtractionParams())
    monkeypatch.setattr(extract, "EXTRACTOR_VERSION", extract.EXTRACTOR_VERSION + 1)
    assert extraction_key("m" * 64, "c" * 64, ExtractionParams()) != key


def test_the_key_is_known_before_loading_and_names_the_folder(tmp_path):
    model_dir = tiny_model_dir("bert")
    params = ExtractionParams(aggregation="mean")
    key = extraction_key(inspect_model_dir(model_dir).sha256, corpus_sha256(Corpus(SENTENCES)), params)
    store = extract_activations(model_dir, SENTENCES, tmp_path, params)
    assert store.path == tmp_path / key and store.meta["key"] == key


def test_a_corpus_read_with_another_label_column_is_refused(tmp_path):
    corpus = Corpus(sentences=[["a"]], labels=[["X"]], source_sha256="c" * 64, label_column="xpos")
    with pytest.raises(ValueError, match="label column 'xpos' but the parameters name 'upos'"):
        extract_activations(tiny_model_dir("bert"), corpus, tmp_path, ExtractionParams(label_column="upos"))
    assert list(tmp_path.iterdir()) == []


def test_cancel_stops_within_one_chunk_and_leaves_no_complete_store(models, tmp_path):
    loaded = models("gpt2")
    options = dict(max_sentences_per_batch=1, chunk_words=1)  # five chunks of one sentence
    progress, logs = [], []
    job = Job(on_progress=lambda *report: progress.append(report), on_log=logs.append,
              should_stop=lambda: len(progress) >= 1)  # flips once the first chunk has reported
    with pytest.raises(Cancelled):
        extract_activations(loaded, SENTENCES, tmp_path, job=job, **options)
    assert len(progress) == 1 and progress[0][2] == "words"  # the second chunk never started
    assert any("cancelled after 1 of 5 chunks" in line for line in logs)
    (folder,) = tmp_path.iterdir()
    assert open_complete(folder, folder.name) is None
    with pytest.raises(StoreError, match="incomplete"):
        ActivationStore.open(folder)

    calls, handle = _count_forwards(loaded)
    resumed = extract_activations(loaded, SENTENCES, tmp_path, **options)
    handle.remove()
    assert len(calls) == len(SENTENCES) - 1 and resumed.path == folder  # resumed after the finished chunk
    clean = extract_activations(loaded, SENTENCES, tmp_path / "clean", **options)
    for key, values in _arrays(resumed).items():
        np.testing.assert_array_equal(values, _arrays(clean)[key])


@pytest.mark.parametrize("arch", ["bert", "t5"])
def test_the_dry_run_matches_a_real_extraction(models, tmp_path, arch):
    long_sentence = [f"w{i % 10}" if i % 3 else "unbelievably" for i in range(30)]
    sentences = SENTENCES + [[], long_sentence, ["the", "unbelievably" * 4]]
    params = ExtractionParams(max_length=16, window_overlap=4)
    plan = plan_extraction(tiny_model_dir(arch), sentences, params, device="cpu")
    store = extract_activations(models(arch), sentences, tmp_path, params)

    tokenizer = models(arch).tokenizer
    subwords = sum(len(tokenizer(s, is_split_into_words=True, add_special_tokens=False)["input_ids"])
                   for s in sentences if s)
    assert (plan.n_words, plan.n_subwords, plan.n_sentences) == (store.n_words, subwords, len(sentences))
    assert plan.neuron_sets == store.neuron_sets
    report = store.meta["report"]
    assert len(plan.windowed) == report["n_windowed_sentences"] >= 1 and plan.n_windows > len(plan.windowed)
    assert len(plan.cut_words) == report["n_cut_words"] == 1
    assert plan.empty_sentences == report["empty_sentences"] == [5]
    on_disk = sum(p.stat().st_size for p in store.path.iterdir() if p.name not in ("meta.json", "journal.jsonl"))
    assert plan.disk_bytes == on_disk
    weights = models(arch).info.n_parameters * 4
    assert weights < plan.peak_memory_bytes < weights + 64 * 2**20 and plan.seconds_estimate > 0
    summary = plan.summary()
    assert summary["words"] == store.n_words and summary["batches"] == store.meta["batching"]["batches"]


def test_counting_subwords_of_a_long_sentence_does_not_warn_about_model_length():
    """transformers warns "Token indices sequence length is longer than the specified maximum" when a whole
    sentence is tokenized; extraction windows such sentences, so the warning would mislead."""
    from transformers import AutoTokenizer

    from analysis.engine.extract import subword_counts

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir("bert"))
    tokenizer.model_max_length = 8
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Collect()
    logger = logging.getLogger("transformers.tokenization_utils_base")
    logger.addHandler(handler)
    try:
        counts = subword_counts(tokenizer, [["the", "cat"] * 10])
        assert counts[0].sum() >= 20
        assert not [m for m in seen if "Token indices sequence length" in m]
        tokenizer([["the", "cat"] * 10], is_split_into_words=True)  # the same call that does warn
        assert [m for m in seen if "Token indices sequence length" in m]
    finally:
        logger.removeHandler(handler)
