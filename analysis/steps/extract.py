"""Extraction: the model's activations over the corpus, into an activation store (``analysis.engine.store``)."""

from __future__ import annotations

from django.conf import settings

from analysis.models import ResultKind

from analysis.steps.commands import ENGINE
from analysis.steps.registry import GPU, Download, StepType, register
from analysis.steps.storage import result_path, stores_root


@register
class Extract(StepType):
    kind = "extract"
    queue = GPU
    result_kind = ResultKind.STORE
    has_selection = False
    downloads = (Download("activations.hdf5", "NeuroX HDF5", "application/x-hdf5", "hdf5"),
                 Download("activations.jsonl", "JSON lines", "application/x-ndjson", "jsonl"),
                 Download("activations.json", "NeuroX JSON", "application/json", "json"))

    def store_keys(self, step) -> list[str]:
        return [step.result_key]

    def compute(self, step, job):
        from analysis.engine.extract import ExtractionParams, extract_activations
        from analysis.engine.formats import read_corpus
        from analysis.engine.loading import load_model
        from analysis.engine.store import open_complete
        from projects.models import CorpusUpload, ModelUpload
        from projects.services.storage import local_folder

        key = step.result_key
        relative = f"stores/{key}"
        existing = open_complete(result_path(relative), key)
        if existing is not None:  # a redelivered step whose previous attempt finished the store
            job.log(f"activation store {key[:12]} is already complete")
            return relative, {"words": existing.n_words, "neuron_sets": existing.neuron_sets}
        model = ModelUpload.objects.get(pk=step.params["model"])
        corpus_row = CorpusUpload.objects.get(pk=step.params["corpus"])
        corpus_folder = local_folder(corpus_row)
        label_file = corpus_row.metadata.get("label_file")
        corpus = read_corpus(corpus_row.format, corpus_folder / corpus_row.metadata["word_file"],
                             filename=corpus_row.metadata["word_file"], label_column=corpus_row.label_column or None,
                             label_source=corpus_folder / label_file if label_file else None,
                             label_filename=label_file, note_sentences_over=None)
        if corpus.source_sha256 != corpus_row.sha256:
            raise RuntimeError(f"the corpus “{corpus_row.name}” no longer matches what was uploaded (its files "
                               "changed in storage); upload it again")
        job.log(f"corpus: {len(corpus.sentences):,} sentences, {corpus.n_words:,} words")
        extraction = step.params["extraction"]
        params = ExtractionParams(**{**extraction, "neuron_sets": tuple(extraction["neuron_sets"])})
        loaded = load_model(local_folder(model), sha256=model.sha256)
        job.log(f"model: {loaded.info.architecture}, {loaded.info.n_layers} layers, on {loaded.device}")
        store = extract_activations(loaded, corpus, stores_root(), params,
                                    chunk_words=settings.NEUROX_EXTRACT_CHUNK_WORDS,
                                    max_tokens_per_batch=settings.NEUROX_EXTRACT_BATCH_TOKENS, job=job)
        if store.meta.get("key") != key:
            raise RuntimeError(f"the engine built store {store.meta.get('key')} where {key} was expected")
        return relative, {"words": store.n_words, "neuron_sets": store.neuron_sets}

    def reproduce(self, prov, step, source, seed, neuron):
        prov.commands.append([*ENGINE, "extract", *source])
