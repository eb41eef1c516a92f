"""Manipulation (methods.md §4): re-run the model with chosen neurons changed; show original and changed output.

:func:`manipulate` runs each sentence twice — plain, then inside :func:`analysis.engine.interventions.intervene`
with the given edits — and returns both outputs side by side with the changed tokens marked:

* causal LM: the greedy continuation of the sentence (``max_new_tokens``);
* encoder-decoder: the greedy translation;
* masked-LM encoder: the top-k fill-mask predictions (with probabilities) at each masked word (words equal to
  the tokenizer's mask token, or the indices given in ``mask_words``).

:func:`probe_predictions` gives, for any model, the per-word labels of a trained probe
(:class:`analysis.engine.probe.Probe`) before and after the edits.

Decoding is greedy (``num_beams=1``, no sampling), so a call is deterministic. Sentences are word lists (a
string is split on whitespace) tokenized with ``is_split_into_words=True`` — the alignment the extraction uses —
one sentence per forward pass (manipulation is interactive, on a handful of sentences). Edits act at every
position, or only at the tokens of chosen words (``chosen_words``: word indices per sentence) or of words whose
label is in ``chosen_labels`` (``labels``: one label per word). Values are raw activation values; presenting
them relative to a neuron's statistics is the caller's job. Changed tokens are found with ``difflib``'s longest
matching blocks, so one inserted token does not mark everything after it as changed.
"""

from __future__ import annotations

import difflib

import numpy as np
from typing import Iterable, Sequence

from .interventions import NeuronEdit, intervene, positions_for_labels, positions_for_words
from .jobs import Job, as_job
from .loading import capture, model_max_tokens, pad_token_id
from .subwords import AGGREGATIONS, word_activations


class ManipulationError(ValueError):
    """The request does not fit the model or the sentences."""


def _words(sentence) -> list[str]:
    words = sentence.split() if isinstance(sentence, str) else [str(w) for w in sentence]
    if not words:
        raise ManipulationError("an empty sentence cannot be manipulated")
    return words


def encode_words(lm, words: list[str]):
    """One sentence of words for the model; refused (never cut) when it is longer than the model takes."""
    encoding = lm.tokenizer([words], is_split_into_words=True, return_tensors="pt", verbose=False)
    limit = model_max_tokens(lm.tokenizer, lm.model.config)
    if encoding["input_ids"].shape[1] > limit:
        raise ManipulationError(
            f"the sentence is {encoding['input_ids'].shape[1]} tokens long, more than the model's {limit}; "
            "shorten it (manipulation never cuts words silently)"
        )
    return encoding


def _on_device(lm, encoding) -> dict:
    return {k: v.to(lm.device) for k, v in encoding.items()}


def _position_mask(encoding, index: int, chosen_words, labels, chosen_labels):
    if chosen_words is not None and chosen_labels is not None:
        raise ManipulationError("choose positions by words or by labels, not both")
    if chosen_words is not None:
        return positions_for_words(encoding, [chosen_words[index]])
    if chosen_labels is not None:
        if labels is None:
            raise ManipulationError("chosen_labels needs the labels of every word (labels=)")
        return positions_for_labels(encoding, [labels[index]], chosen_labels)
    return None


def _has_mlm_head(lm) -> bool:
    head = getattr(lm.model, "get_output_embeddings", lambda: None)()
    return head is not None and lm.tokenizer.mask_token_id is not None


def _display_tokens(tokenizer, ids: Iterable[int]) -> list[str]:
    special = set(tokenizer.all_special_ids)
    return [tokenizer.decode([i]) for i in ids if i not in special]


def _mark_changes(original: list[str], changed: list[str]) -> tuple[list[bool], list[bool]]:
    """(changed flag per original token, per manipulated token): tokens outside the longest matching blocks."""
    original_flags, changed_flags = [True] * len(original), [True] * len(changed)
    for block in difflib.SequenceMatcher(a=original, b=changed, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            original_flags[block.a + k] = False
            changed_flags[block.b + k] = False
    return original_flags, changed_flags


def _edits_summary(edits: Sequence[NeuronEdit]) -> list[dict]:
    return [{"neuron": e.neuron.label, "operation": e.operation, "value": float(e.value)} for e in edits]


def _generate(lm, inputs: dict, max_new_tokens: int, use_cache: bool):
    import torch

    pad_id = pad_token_id(lm)
    with torch.inference_mode():
        out = lm.model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad_id,
            use_cache=use_cache,
        )
    ids = out[0].tolist()
    return ids[inputs["input_ids"].shape[1]:] if lm.kind == "decoder" else ids


def _text_side_by_side(lm, original_ids, changed_ids) -> dict:
    tokenizer = lm.tokenizer
    original, changed = _display_tokens(tokenizer, original_ids), _display_tokens(tokenizer, changed_ids)
    original_flags, changed_flags = _mark_changes(original, changed)
    return {
        "original": {"text": tokenizer.decode(original_ids, skip_special_tokens=True).strip(), "tokens": original,
                     "changed": original_flags},
        "manipulated": {"text": tokenizer.decode(changed_ids, skip_special_tokens=True).strip(), "tokens": changed,
                        "changed": changed_flags},
        "identical": original == changed,
    }


def _fill_mask(lm, inputs: dict, top_k: int):
    import torch

    with torch.inference_mode():
        logits = lm.model(**inputs).logits[0]
    mask_positions = (inputs["input_ids"][0] == lm.tokenizer.mask_token_id).nonzero().flatten().tolist()
    predictions = []
    for position in mask_positions:
        probabilities = torch.softmax(logits[position].float(), dim=-1)
        values, ids = probabilities.topk(top_k)
        predictions.append([
            {"token": lm.tokenizer.decode([i]), "id": int(i), "probability": float(p)}
            for i, p in zip(ids.tolist(), values.tolist())
        ])
    return mask_positions, predictions


def _output_task(lm) -> str:
    """What the model produces to compare: "generation" (decoder), "translation" (encoder-decoder) or
    "fill-mask" (an encoder with a masked-LM head)."""
    if lm.kind == "decoder":
        return "generation"
    if lm.kind == "encoder-decoder":
        return "translation"
    if _has_mlm_head(lm):
        return "fill-mask"
    raise ManipulationError(
        "this encoder has no masked-LM head, so it produces no text to compare; use the probe's per-word "
        "predictions (probe_predictions) instead"
    )


def _fill_mask_side_by_side(lm, inputs: dict, encoding, edits, mask, sites, top_k: int, index: int) -> dict:
    """``{"masks", "identical"}`` for sentence ``index``: the top-k fillers of each mask, without and with the edits."""
    positions, original = _fill_mask(lm, inputs, top_k)
    if not positions:
        raise ManipulationError(
            f"sentence {index + 1} has no masked word: write {lm.tokenizer.mask_token} for a word or pass "
            "mask_words"
        )
    with intervene(lm.model, edits, positions=mask, sites=sites):
        _, changed = _fill_mask(lm, inputs, top_k)
    word_ids = encoding.word_ids(0)
    masks = [
        {
            "word": word_ids[p],
            "original": before,
            "manipulated": after,
            "top1_changed": before[0]["id"] != after[0]["id"],
            "changed": [a["id"] not in {b["id"] for b in before} for a in after],
        }
        for p, before, after in zip(positions, original, changed)
    ]
    identical = all([b["id"] for b in m["original"]] == [a["id"] for a in m["manipulated"]] for m in masks)
    return {"masks": masks, "identical": identical}


def _generate_both(lm, inputs: dict, edits, mask, sites, max_new_tokens: int):
    """(original ids, manipulated ids): greedy output without and with the edits."""
    # a cached decoder step sees one token, which cannot be placed in a position mask, so a causal LM
    # recomputes the whole sequence when positions are chosen (an encoder runs once either way)
    use_cache = mask is None or lm.kind == "encoder-decoder"
    original_ids = _generate(lm, inputs, max_new_tokens, use_cache=True)
    with intervene(lm.model, edits, positions=mask, sites=sites):
        changed_ids = _generate(lm, inputs, max_new_tokens, use_cache=use_cache)
    return original_ids, changed_ids


def manipulate(
    lm,
    sentences: Sequence,
    edits: Sequence[NeuronEdit],
    *,
    chosen_words: Sequence[Iterable[int]] | None = None,
    labels: Sequence[Sequence[str]] | None = None,
    chosen_labels: Iterable[str] | None = None,
    mask_words: Sequence[Iterable[int]] | None = None,
    max_new_tokens: int = 20,
    top_k: int = 5,
    job: Job | None = None,
) -> dict:
    """Original and manipulated outputs of ``lm`` (a LoadedModel) for each sentence; JSON-serialisable.

    Result: ``{"task": "generation" | "translation" | "fill-mask", "edits": [...], "positions": ...,
    "sentences": [...]}``; per sentence ``{"words", "original", "manipulated", "identical"}`` for text output
    (``original``/``manipulated``: ``text``, ``tokens``, ``changed`` flags) or ``{"words", "masks": [{"word",
    "original": top-k, "manipulated": top-k, "top1_changed", "changed"}]}`` for fill-mask.
    ``job``: progress in ``"sentences"`` and a cancellation check before each sentence.
    """
    job = as_job(job)
    edits = list(edits)
    if not edits:
        raise ManipulationError("choose at least one neuron to change")
    if chosen_labels is not None:
        chosen_labels = set(chosen_labels)
    task = _output_task(lm)
    sites = lm.neuron_sites()
    results = []
    for index, sentence in enumerate(sentences):
        job.check_cancelled()
        words = _words(sentence)
        if task == "fill-mask" and mask_words is not None:
            masked = set(int(w) for w in mask_words[index])
            words = [lm.tokenizer.mask_token if i in masked else w for i, w in enumerate(words)]
        encoding = encode_words(lm, words)
        mask = _position_mask(encoding, index, chosen_words, labels, chosen_labels)
        inputs = _on_device(lm, encoding)
        entry = {"words": words}
        if task == "fill-mask":
            entry.update(_fill_mask_side_by_side(lm, inputs, encoding, edits, mask, sites, top_k, index))
        else:
            original_ids, changed_ids = _generate_both(lm, inputs, edits, mask, sites, max_new_tokens)
            entry.update(_text_side_by_side(lm, original_ids, changed_ids))
        results.append(entry)
        job.progress(index + 1, len(sentences), "sentences")
    return {
        "task": task,
        "edits": _edits_summary(edits),
        "positions": _positions_summary(chosen_words, chosen_labels),
        "sentences": results,
    }


def _positions_summary(chosen_words, chosen_labels) -> dict:
    if chosen_words is not None:
        return {"mode": "words", "words": [sorted(int(w) for w in words) for words in chosen_words]}
    if chosen_labels is not None:
        return {"mode": "labels", "labels": sorted(chosen_labels)}
    return {"mode": "all"}


# ---------------------------------------------------------------------------------------------- probe


def _probe_rows(lm, probe, words, inputs, word_ids, aggregation, sites):
    """The probe's input rows (its neurons, its column order) for one sentence."""
    import torch

    by_key = {site.key: site for site_list in sites.values() for site in site_list}
    keys = sorted({(n.set, n.layer) for n in probe.neuron_ids})
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ManipulationError(f"the probe reads {missing}, which this model does not have")
    if any(k[0].startswith("dec.") for k in keys):
        raise ManipulationError(
            "per-word probe predictions under manipulation read encoder (enc.*) or single-stack neurons; a probe on "
            "decoder neurons (dec.*) would need the decoder teacher-forced, which is not supported here"
        )
    with torch.inference_mode(), capture(lm.model, [by_key[k] for k in keys]) as captured:
        if lm.kind == "encoder-decoder":
            lm.model.get_encoder()(**inputs)
        else:
            lm.model(**inputs)
        per_site = {k: word_activations(captured[k][0], word_ids, len(words), aggregation).float().cpu() for k in keys}
    columns = [per_site[(n.set, n.layer)][:, n.unit] for n in probe.neuron_ids]
    return torch.stack(columns, dim=1).numpy()


def probe_predictions(
    lm,
    probe,
    sentences: Sequence,
    edits: Sequence[NeuronEdit],
    *,
    aggregation: str = "last",
    chosen_words: Sequence[Iterable[int]] | None = None,
    labels: Sequence[Sequence[str]] | None = None,
    chosen_labels: Iterable[str] | None = None,
    job: Job | None = None,
) -> dict:
    """Per-word labels of ``probe`` before and after the edits, for any model.

    ``aggregation`` must be the one the probe's activations were extracted with (``first``/``last``/``mean``).
    Words with no subword get a zero row, as in extraction. Returns
    ``{"task": "probe", "edits", "positions", "sentences": [{"words", "original", "manipulated", "changed"}]}``.
    ``job``: as for :func:`manipulate`.
    """
    job = as_job(job)
    if aggregation not in AGGREGATIONS:
        raise ManipulationError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, not {aggregation!r}")
    edits = list(edits)
    if chosen_labels is not None:
        chosen_labels = set(chosen_labels)
    sites = lm.neuron_sites()
    results = []
    for index, sentence in enumerate(sentences):
        job.check_cancelled()
        words = _words(sentence)
        encoding = encode_words(lm, words)
        mask = _position_mask(encoding, index, chosen_words, labels, chosen_labels)
        inputs = _on_device(lm, encoding)
        word_ids = encoding.word_ids(0)
        original = probe.predict_labels(_probe_rows(lm, probe, words, inputs, word_ids, aggregation, sites))
        with intervene(lm.model, edits, positions=mask, sites=sites):
            changed = probe.predict_labels(_probe_rows(lm, probe, words, inputs, word_ids, aggregation, sites))
        results.append({
            "words": words,
            "original": original,
            "manipulated": changed,
            "changed": [a != b for a, b in zip(original, changed)],
        })
        job.progress(index + 1, len(sentences), "sentences")
    return {
        "task": "probe",
        "edits": _edits_summary(edits),
        "positions": _positions_summary(chosen_words, chosen_labels),
        "sentences": results,
    }


def probe_input_rows(lm, probe, sentences: Sequence, aggregation: str = "last") -> np.ndarray:
    """``[n_words, len(probe.neuron_ids)]``: the probe's inputs for every word of ``sentences``, read from the
    model as it is now (so inside ablation hooks they are the ablated model's), aggregated as extraction does."""
    if aggregation not in AGGREGATIONS:
        raise ManipulationError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, not {aggregation!r}")
    sites = lm.neuron_sites()
    rows = []
    for sentence in sentences:
        words = _words(sentence)
        encoding = encode_words(lm, words)
        rows.append(_probe_rows(lm, probe, words, _on_device(lm, encoding), encoding.word_ids(0), aggregation, sites))
    return np.concatenate(rows)


__all__ = ["manipulate", "probe_predictions", "probe_input_rows", "ManipulationError"]
