"""Model-level ablation (methods.md §3): switch off ranked neurons inside the model and measure its own task.

The model's task depends on its kind:

* causal LM (``kind == "decoder"``): per-token loss (mean negative log-likelihood of every non-pad token given
  its prefix, micro-averaged over the test set) and perplexity = exp(loss);
* encoder-decoder with references: BLEU and chrF (sacrebleu, corpus level) of greedy translations
  (``num_beams=1``, no sampling: deterministic), plus the per-token loss of the references (teacher-forced),
  which moves smoothly where BLEU on a small test set jumps;
* encoder with a masked-LM head: masked-LM loss and accuracy on a deterministic masking: 15 % of each
  sentence's non-special tokens (at least one), drawn with ``numpy.random.default_rng([seed, sentence])`` so
  the masks do not depend on batching, all replaced by the mask token (no 80/10/10 mix: the mix is a training
  device, and a fixed [MASK] makes the curve's points comparable);
* any model with a trained probe: probe accuracy on the labelled test words (:func:`probe_task`), given a
  function that returns the word activations of the probe's neurons (the extraction code's job).

:func:`ablation_curve` removes neurons cumulatively along a ranking, top-to-bottom and bottom-to-top (and
optionally in one seeded random order), zeroing them or setting them to their corpus means, and evaluates the
task at each step. Sentences are tokenised once, sorted by length and packed into batches of at most
``max_batch_tokens`` padded tokens, so memory is bounded by the batch, not the test set. The default (1,024) is
small because a causal or masked LM's logits are ``tokens × vocabulary`` floats (125 MB for a 30k vocabulary);
raise it on a GPU with a small vocabulary. :func:`ablation_curves` is the whole measurement a run asks for
(top and bottom orders, several random orders and their mean), and :func:`probe_task_through_model` the task of
an encoder without a head of its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from .interventions import intervene, mean_ablate, zero
from .jobs import Job, as_job
from .loading import model_max_tokens, pad_token_id
from .neurons import NeuronId
from .options import Option

DEFAULT_POINTS = 11
MASK_RATE = 0.15
CURVE_MODES = ("bottom", "random", "top")
# Each point runs the whole test set through the model once per order (and per random seed): bounded so that one
# request cannot ask for a million forward passes; the run's cost bounds the rest.
MAX_POINTS = 50
MAX_RANDOM_SEEDS = 20  # the orders neurons are removed in along a ranking
# what a run may set of :func:`ablation_curves`
OPTIONS = (
    Option("percents", float, tuple(range(10, 101, 10)), "the shares of neurons to remove", minimum=0,
           above_minimum=True, maximum=100, many=True, max_count=MAX_POINTS, example="[10, 50]"),
    Option("random_seeds", int, 1, "how many random removal orders to compare with", minimum=1,
           maximum=MAX_RANDOM_SEEDS),
    Option("modes", str, CURVE_MODES, "top removes the ranking's best neurons first, bottom its worst, random "
           "neurons in a seeded random order", choices=CURVE_MODES, many=True),
)


class AblationError(ValueError):
    """The test set or the options do not fit the model."""


def _as_text(sentence) -> str:
    return sentence if isinstance(sentence, str) else " ".join(sentence)


def _pack(lengths: Sequence[int], max_batch_tokens: int) -> list[list[int]]:
    """Sentence indices grouped into batches of similar length with batch × longest ≤ max_batch_tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches, current, longest = [], [], 0
    for i in order:
        new_longest = max(longest, lengths[i])
        if current and new_longest * (len(current) + 1) > max_batch_tokens:
            batches.append(current)
            current, new_longest = [], lengths[i]
        current.append(i)
        longest = new_longest
    if current:
        batches.append(current)
    return batches


def _pad(rows: list[list[int]], value: int):
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[b, : len(row)] = 1
    return ids, mask


@dataclass
class Task:
    """A prepared test set: ``evaluate()`` runs the model once over it and returns ``{metric: value}``."""

    name: str
    metrics: list[str]
    higher_is_better: dict[str, bool]
    evaluate: Callable[[], dict]
    info: dict = field(default_factory=dict)

    @property
    def primary(self) -> str:
        return self.metrics[0]


def _token_loss(logits, targets, keep):
    """(sum of NLL, count) over positions where ``keep`` is true."""
    import torch

    selected = logits[keep].float()
    nll = torch.nn.functional.cross_entropy(selected, targets[keep], reduction="sum")
    return float(nll), int(keep.sum())


def causal_lm_task(lm, texts: Iterable, *, max_batch_tokens: int = 1024, log=None) -> Task:
    """Per-token loss and perplexity of a causal LM on ``texts`` (strings or word lists)."""
    import torch

    texts = [_as_text(t) for t in texts]
    if not texts:
        raise AblationError("the test set is empty")
    max_length = model_max_tokens(lm.tokenizer, lm.model.config)
    full = lm.tokenizer(texts, verbose=False)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in full)
    encoded = [ids[:max_length] for ids in full]
    if truncated and log:
        log(f"{truncated} test sentences were cut at the model's maximum length of {max_length} tokens")
    usable = [ids for ids in encoded if len(ids) >= 2]  # a one-token sentence has nothing to predict
    if not usable:
        raise AblationError("no test sentence has two or more tokens, so there is nothing to predict")
    pad_id = pad_token_id(lm)
    batches = [_pad([usable[i] for i in group], pad_id) for group in _pack([len(u) for u in usable], max_batch_tokens)]

    def evaluate():
        total, count = 0.0, 0
        with torch.inference_mode():
            for ids, mask in batches:
                ids, mask = ids.to(lm.device), mask.to(lm.device)
                logits = lm.model(input_ids=ids, attention_mask=mask).logits
                part, n = _token_loss(logits[:, :-1], ids[:, 1:], mask[:, 1:].bool())
                total, count = total + part, count + n
        loss = total / count
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}

    info = {"sentences": len(usable), "tokens": sum(len(u) - 1 for u in usable), "truncated": truncated}
    return Task("causal-lm", ["loss", "perplexity"], {"loss": False, "perplexity": False}, evaluate, info)


def masked_lm_task(lm, texts: Iterable, *, mask_rate: float = MASK_RATE, seed: int = 0,
                   max_batch_tokens: int = 1024, log=None) -> Task:
    """Masked-LM loss and accuracy on a deterministic masking of ``texts`` (see the module docstring)."""
    import torch

    mask_id = lm.tokenizer.mask_token_id
    if mask_id is None:
        raise AblationError("this tokenizer has no mask token, so masked-LM loss cannot be measured")
    if getattr(lm.model, "get_output_embeddings", lambda: None)() is None:
        raise AblationError(
            "this encoder has no masked-LM head; measure a trained probe's accuracy instead (probe_task; on "
            "the command line: ablate --probe DIR with a labelled corpus)"
        )
    texts = [_as_text(t) for t in texts]
    max_length = model_max_tokens(lm.tokenizer, lm.model.config)
    encoded = lm.tokenizer(texts, truncation=True, max_length=max_length, return_special_tokens_mask=True)
    rows, targets = [], []
    for index, (ids, special) in enumerate(zip(encoded["input_ids"], encoded["special_tokens_mask"])):
        candidates = [t for t, s in enumerate(special) if not s]
        if not candidates:
            continue
        rng = np.random.default_rng([seed, index])
        chosen = rng.choice(candidates, size=max(1, round(mask_rate * len(candidates))), replace=False)
        masked = list(ids)
        target = [-100] * len(ids)
        for t in sorted(int(c) for c in chosen):
            target[t], masked[t] = ids[t], mask_id
        rows.append(masked)
        targets.append(target)
    if not rows:
        raise AblationError("the test set has no words to mask")
    pad_id = pad_token_id(lm)
    batches = []
    for group in _pack([len(r) for r in rows], max_batch_tokens):
        ids, attention = _pad([rows[i] for i in group], pad_id)
        labels, _ = _pad([targets[i] for i in group], -100)
        batches.append((ids, attention, labels))

    def evaluate():
        total, count, correct = 0.0, 0, 0
        with torch.inference_mode():
            for ids, attention, labels in batches:
                ids, attention, labels = ids.to(lm.device), attention.to(lm.device), labels.to(lm.device)
                logits = lm.model(input_ids=ids, attention_mask=attention).logits
                keep = labels != -100
                part, n = _token_loss(logits, labels, keep)
                total, count = total + part, count + n
                correct += int((logits[keep].argmax(-1) == labels[keep]).sum())
        return {"loss": total / count, "accuracy": correct / count}

    info = {"sentences": len(rows), "masked_tokens": sum(sum(t != -100 for t in r) for r in targets),
            "mask_rate": mask_rate, "seed": seed}
    return Task("masked-lm", ["loss", "accuracy"], {"loss": False, "accuracy": True}, evaluate, info)


def translation_task(lm, sources: Iterable, references: Iterable[str], *, max_new_tokens: int | None = None,
                     max_batch_tokens: int = 1024, log=None) -> Task:
    """BLEU and chrF of greedy translations of ``sources`` against ``references``, plus reference loss."""
    import sacrebleu
    import torch

    sources = [_as_text(s) for s in sources]
    references = [_as_text(r) for r in references]
    if len(sources) != len(references):
        raise AblationError(f"{len(sources)} source sentences but {len(references)} references")
    if not sources:
        raise AblationError("the test set is empty")
    tokenizer = lm.tokenizer
    max_length = model_max_tokens(lm.tokenizer, lm.model.config)
    src_ids = tokenizer(sources, truncation=True, max_length=max_length)["input_ids"]
    ref_ids = tokenizer(text_target=references, truncation=True, max_length=max_length)["input_ids"]
    if max_new_tokens is None:
        max_new_tokens = min(max_length, int(1.5 * max(len(r) for r in ref_ids)) + 10)
    pad_id = pad_token_id(tokenizer)
    groups = _pack([max(len(s), len(r)) for s, r in zip(src_ids, ref_ids)], max_batch_tokens)
    batches = []
    for group in groups:
        ids, mask = _pad([src_ids[i] for i in group], pad_id)
        labels, _ = _pad([ref_ids[i] for i in group], -100)
        batches.append((group, ids, mask, labels))

    def evaluate():
        hypotheses = [""] * len(sources)
        total, count = 0.0, 0
        with torch.inference_mode():
            for group, ids, mask, labels in batches:
                ids, mask, labels = ids.to(lm.device), mask.to(lm.device), labels.to(lm.device)
                out = lm.model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, num_beams=1,
                    do_sample=False, pad_token_id=pad_id,
                )
                for i, text in zip(group, tokenizer.batch_decode(out, skip_special_tokens=True)):
                    hypotheses[i] = text.strip()
                logits = lm.model(input_ids=ids, attention_mask=mask, labels=labels).logits
                part, n = _token_loss(logits, labels, labels != -100)
                total, count = total + part, count + n
        return {
            "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "loss": total / count,
        }

    info = {"sentences": len(sources), "max_new_tokens": max_new_tokens, "decoding": "greedy"}
    return Task("translation", ["bleu", "chrf", "loss"], {"bleu": True, "chrf": True, "loss": False}, evaluate, info)


def probe_task(probe, word_activations: Callable[[list[list[str]]], np.ndarray], sentences: list[list[str]],
               labels: list[list[str]]) -> Task:
    """Accuracy of a trained probe on the labelled words of ``sentences``, for any model.

    ``word_activations(sentences)`` must run the model and return ``[n_words, len(probe.neuron_ids)]`` raw
    activations in ``probe.neuron_ids`` order (the extraction code's word aggregation); it runs inside the
    ablation hooks, so it sees the ablated model. Words whose label the probe does not know are skipped.
    """
    label_index = {name: i for i, name in enumerate(probe.label_names)}
    flat = [label_index.get(label, -1) for sentence in labels for label in sentence]
    gold = np.asarray(flat, dtype=np.int64)
    if len(gold) != sum(len(s) for s in sentences):
        raise AblationError("labels and sentences do not have the same number of words")
    known = gold >= 0
    if not known.any():
        raise AblationError("none of the test labels is one the probe was trained on")

    def evaluate():
        rows = np.asarray(word_activations(sentences), dtype=np.float32)
        predicted = probe.predict(rows[known])
        return {"accuracy": float((predicted == gold[known]).mean())}

    return Task("probe", ["accuracy"], {"accuracy": True}, evaluate, {"words": int(known.sum())})


def task_for(lm, *, texts=None, sources=None, references=None, log=None, **options) -> Task:
    """The model's own task for its kind (see the module docstring)."""
    if lm.kind == "decoder":
        return causal_lm_task(lm, texts if texts is not None else sources, log=log, **options)
    if lm.kind == "encoder-decoder":
        if references is None:
            raise AblationError("an encoder-decoder model is measured by BLEU/chrF, which needs references")
        return translation_task(lm, sources if sources is not None else texts, references, log=log, **options)
    return masked_lm_task(lm, texts if texts is not None else sources, log=log, **options)


# ---------------------------------------------------------------------------------------------- curves


def curve_counts(total: int, steps=None, max_neurons: int | None = None) -> list[int]:
    """Neuron counts to remove: ``steps`` None → 11 evenly spaced points from 0 to 100 %; an int → every
    ``steps`` neurons (the demo used 50) plus the last; a sequence → those counts. ``max_neurons`` caps the
    x-axis (the demo stopped at 2,000)."""
    if total <= 0:
        raise AblationError("the ranking has no neurons")
    limit = total if max_neurons is None else max(0, min(total, int(max_neurons)))
    if steps is None:
        counts = np.round(np.linspace(0, limit, DEFAULT_POINTS)).astype(int).tolist()
    elif isinstance(steps, int):
        if steps <= 0:
            raise AblationError(f"the step must be a positive number of neurons, not {steps}")
        counts = list(range(0, limit + 1, steps))
        if counts[-1] != limit:
            counts.append(limit)
    else:
        counts = [int(c) for c in steps]
        bad = [c for c in counts if not 0 <= c <= total]
        if bad:
            raise AblationError(f"counts {bad[:5]} are outside 0..{total}")
    return sorted(set([0] + counts))


def _ranked_neurons(ranking) -> list[NeuronId]:
    """Best-first neurons of a :class:`~analysis.engine.ranking.Ranking` or a best-first sequence."""
    if hasattr(ranking, "order") and hasattr(ranking, "neuron_ids"):
        return [ranking.neuron_ids[int(i)] for i in ranking.order]
    neurons = [n if isinstance(n, NeuronId) else NeuronId.parse(str(n)) for n in ranking]
    if len(set(neurons)) != len(neurons):
        raise AblationError("the ranking lists a neuron more than once")
    return neurons


def _check_curve_options(operation: str, means, orders: Sequence[str]) -> None:
    if operation not in ("zero", "mean"):
        raise AblationError(f"ablation sets neurons to 'zero' or their 'mean', not {operation!r}")
    if operation == "mean" and means is None:
        raise AblationError("mean ablation needs each neuron's corpus mean (means=)")
    unknown = [o for o in orders if o not in ("top", "bottom", "random")]
    if unknown or not orders:
        raise AblationError(f"orders must be some of 'top', 'bottom', 'random'; got {list(orders)}")


def ablation_curve(
    lm,
    ranking,
    task: Task | None = None,
    *,
    operation: str = "zero",
    means: Mapping[NeuronId, float] | None = None,
    orders: Sequence[str] = ("top", "bottom"),
    steps=None,
    max_neurons: int | None = None,
    seed: int = 0,
    job: Job | None = None,
    **task_data,
) -> dict:
    """Cumulative model-level ablation curves along ``ranking``; returns a JSON-serialisable dict.

    ``task``: a prepared :class:`Task`, or pass the test set (``texts=``, or ``sources=`` + ``references=``)
    and the model's own task is prepared (:func:`task_for`). ``operation``: ``"zero"`` or ``"mean"`` (needs
    ``means``, NeuronId → corpus mean). ``orders``: any of ``"top"`` (best first), ``"bottom"`` (worst
    first), ``"random"`` (one permutation drawn with ``seed``). ``job``: progress in ``"evaluations"`` after
    each evaluation (the baseline, then every point of every order), each result in its log, and a cancellation
    check before each evaluation (:class:`~analysis.engine.jobs.Cancelled`; the hooks are removed and nothing is
    returned).

    Result: ``{"task", "metrics", "primary", "higher_is_better", "operation", "total_neurons",
    "x": {"count": [...], "percent": [...]}, "baseline": {metric: value}, "curves": {order: {metric:
    [value per x]}}, "params", "task_info", "seconds"}``; the first point of every curve is the baseline.
    """
    started = time.perf_counter()
    job = as_job(job)
    _check_curve_options(operation, means, orders)
    neurons = _ranked_neurons(ranking)
    counts = curve_counts(len(neurons), steps, max_neurons)
    if task is None:
        task = task_for(lm, log=job.log, **task_data)
    elif task_data:
        raise AblationError(f"pass either a prepared task or test data, not both ({', '.join(task_data)})")
    sequences = {
        "top": neurons,
        "bottom": neurons[::-1],
        "random": [neurons[i] for i in np.random.default_rng(seed).permutation(len(neurons))],
    }
    sites = lm.neuron_sites() if hasattr(lm, "neuron_sites") else None
    evaluations = 1 + len(orders) * (len(counts) - 1)
    done = 0

    def tick(message: str):
        nonlocal done
        done += 1
        job.log(message)
        job.progress(done, evaluations, "evaluations")

    job.check_cancelled()
    baseline = task.evaluate()
    tick(f"baseline: {_format(baseline)}")
    full_set_result = None  # removing every neuron gives the same model in every order
    curves = {}
    for order in orders:
        values = {metric: [baseline[metric]] for metric in task.metrics}
        for count in counts[1:]:
            chosen = sequences[order][:count]
            if count == len(neurons) and full_set_result is not None:
                result = full_set_result
            else:
                job.check_cancelled()
                edits = zero(chosen) if operation == "zero" else mean_ablate(chosen, means)
                with intervene(lm.model, edits, sites=sites):
                    result = task.evaluate()
                if count == len(neurons):
                    full_set_result = result
            for metric in task.metrics:
                values[metric].append(result[metric])
            tick(f"{order} {count}/{len(neurons)} removed: {_format(result)}")
        curves[order] = values
    return {
        "task": task.name,
        "metrics": list(task.metrics),
        "primary": task.primary,
        "higher_is_better": dict(task.higher_is_better),
        "operation": operation,
        "total_neurons": len(neurons),
        "x": {"count": counts, "percent": [100.0 * c / len(neurons) for c in counts]},
        "baseline": baseline,
        "curves": curves,
        "params": {"orders": list(orders), "steps": steps, "max_neurons": max_neurons, "seed": seed},
        "task_info": task.info,
        "seconds": time.perf_counter() - started,
    }


def _format(values: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in values.items())


# ------------------------------------------------------------------------------------------------ as a run asks


PROBE_METRIC = "probe accuracy on the corpus's test sentences, neurons zeroed inside the model"


def has_own_task(lm) -> bool:
    """Whether the model measures a task of its own (a causal LM, a translation model, an encoder with a
    masked-LM head); an encoder without a head (e.g. MiniLM's ``BertModel``) is measured through a probe."""
    return lm.kind != "encoder" or getattr(lm.model, "get_output_embeddings", lambda: None)() is not None


def probe_task_through_model(lm, store, *, neuron_sets, layers, seed: int, aggregation: str, model_name: str,
                             job: Job | None = None) -> Task:
    """For an encoder without a task of its own: train a probe on the store's neurons (``neuron_sets`` /
    ``layers``) over the training sentences of its labelled corpus (the split and seed of the lca rankings), and
    measure its accuracy on the test sentences with their activations read through the (ablated) model, so
    ablation changes what the model computes, not just what the probe sees."""
    from .manipulation import probe_input_rows
    from .probe import train_probe
    from .splits import split_by_sentence

    job = as_job(job)
    if not store.label_names:
        raise AblationError(f"{model_name} ({lm.info.architecture}) is an encoder without a masked-LM head, so "
                            "model-level ablation measures a probe's accuracy on labelled words, and this run's "
                            "corpus has no labels; choose a corpus read with a label column")
    features = store.features(neuron_sets, layers)
    split = split_by_sentence(store.sentence_offsets, seed=seed)
    job.log(f"{model_name} ({lm.info.architecture}) is an encoder without a masked-LM head, so the metric is "
            f"{PROBE_METRIC}; the test set is not used")
    probe = train_probe(features, store.labels, label_names=store.label_names, train=split.train, dev=split.dev,
                        test=split.test, seed=seed, job=job.without_progress())
    job.log(f"probe trained on {len(split.train):,} words: test accuracy {probe.metrics.get('test_accuracy', 0):.4f}"
            " (from the store)")
    offsets, words, names = store.sentence_offsets, store.words, store.label_names
    limit = model_max_tokens(lm.tokenizer, lm.model.config)
    sentences, labels, too_long = [], [], 0
    for s in sorted(set(np.searchsorted(offsets, split.test, side="right") - 1)):
        start, end = int(offsets[s]), int(offsets[s + 1])
        if len(lm.tokenizer([words[start:end]], is_split_into_words=True)["input_ids"][0]) > limit:
            too_long += 1
            continue
        sentences.append(words[start:end])
        labels.append([names[i] if i >= 0 else "" for i in store.labels[start:end]])
    if too_long:
        job.log(f"{too_long} test sentences are longer than the model takes in one pass and are left out")
    if not sentences:
        raise AblationError("the corpus has no test sentences short enough to score the probe on")
    task = probe_task(probe, lambda batch: probe_input_rows(lm, probe, batch, aggregation), sentences, labels)
    task.info.update(sentences=len(sentences), left_out_too_long=too_long, trained_on_words=len(split.train),
                     probe_test_accuracy_from_store=probe.metrics.get("test_accuracy"))
    return task


def ablation_curves(lm, ranking, task: Task, *, percents: Sequence[float], modes: Sequence[str], random_seeds: int,
                    seed: int = 0, job: Job | None = None) -> dict:
    """Remove the ranking's neurons cumulatively, ``percents`` of them at each point, in each of ``modes``: along
    the ranking (``top``, ``bottom``) and in ``random_seeds`` random orders (seeds ``seed``, ``seed + 1``, …),
    measuring ``task`` at each point (:func:`ablation_curve`). The random curve is the mean over the random
    orders, each kept under ``random_curves``. Progress is one count over every evaluation."""
    job = as_job(job)
    total = len(ranking.neuron_ids)
    counts = sorted({max(1, round(total * percent / 100)) for percent in percents})
    orders = [m for m in ("top", "bottom") if m in modes]
    seeds = [seed + i for i in range(random_seeds)] if "random" in modes else []
    evaluations = (1 + len(orders) * len(counts)) * bool(orders) + len(seeds) * (1 + len(counts))
    done, curve, random_curves = 0, None, []
    for orders_now, seed_now in ([(orders, seed)] if orders else []) + [(["random"], s) for s in seeds]:
        part = ablation_curve(lm, ranking, task, orders=orders_now, steps=counts, seed=seed_now,
                              job=job.part(done, evaluations))
        done += 1 + len(orders_now) * (len(part["x"]["count"]) - 1)
        if curve is None:
            curve = part
        if orders_now == ["random"]:
            random_curves.append(part["curves"]["random"])
        else:
            curve["curves"].update(part["curves"])
    if random_curves:  # the mean over the random orders, and each of them
        curve["curves"]["random"] = {metric: np.mean([c[metric] for c in random_curves], axis=0).tolist()
                                     for metric in curve["metrics"]}
        curve["random_curves"] = random_curves
    curve["params"] = {"percents": list(percents), "modes": list(modes), "random_seeds": random_seeds,
                       "seed": seed, "ranking_method": ranking.method}
    curve["metric_description"] = PROBE_METRIC if task.name == "probe" else f"{task.name} {task.primary}"
    return curve
