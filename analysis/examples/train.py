"""Train the example projects' small models on the grammar's corpus, deterministically on the CPU.

- ``train_translation_model``: a Marian-config encoder–decoder (word-level vocabulary shared by both sides) that
  translates the grammar's sentences into its verb-final language;
- ``train_causal_lm``: a GPT-2-config language model over the grammar's source sentences.

Each writes a HuggingFace model folder (``config.json``, ``model.safetensors``, ``generation_config.json``, a fast
word-level tokenizer) that the site accepts as an upload, plus ``training.json`` (seed, sizes, time, metrics).
One torch thread per process: on the 2-core machine, one thread was several times faster than two when another
process was busy. The same seed and data give the same files.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .grammar import NUMBER_SUFFIX, TENSE_SUFFIX, Pair

PAD, EOS, UNK, BOS = "<pad>", "</s>", "<unk>", "<s>"
SPECIAL_TOKENS = (PAD, EOS, UNK, BOS)
MAX_TRANSLATION_TOKENS = 64  # the grammar's longest translations are about 40 tokens


@dataclass(frozen=True)
class Sizes:
    d_model: int = 128
    layers: int = 2  # per stack (encoder and decoder for translation)
    heads: int = 4
    ffn: int = 256
    max_positions: int = 64


@dataclass(frozen=True)
class Schedule:
    epochs: int = 6
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup: float = 0.05  # share of the steps
    threads: int = 1


def word_level_tokenizer(sentences, *, seq2seq: bool):
    """A fast tokenizer with one token per whitespace-separated word of ``sentences`` (lists of words), and the
    family's special-token convention: ``a </s>`` for an encoder–decoder, ``<s> a`` for a causal LM."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for sentence in sentences for w in sentence} - set(SPECIAL_TOKENS))
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *words))}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    template = f"$A {EOS}" if seq2seq else f"{BOS} $A"
    special = [(EOS, vocab[EOS])] if seq2seq else [(BOS, vocab[BOS])]
    tokenizer.post_processor = TemplateProcessing(single=template, special_tokens=special)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS, unk_token=UNK,
                                   bos_token=BOS)


def _seeded(seed: int, threads: int):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    return torch


def _batches(n: int, batch_size: int, generator):
    import torch

    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _fit(model, make_batch, n: int, schedule: Schedule, seed: int, log) -> float:
    """AdamW with a short linear warm-up (post-norm transformers such as Marian need one at these learning
    rates), then a linear decay; returns the last epoch's mean loss."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=schedule.learning_rate, weight_decay=0.01)
    steps = schedule.epochs * -(-n // schedule.batch_size)
    warmup = max(1, int(schedule.warmup * steps))
    decay = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / (steps - warmup))))
    model.train()
    mean_loss = float("nan")
    for epoch in range(schedule.epochs):
        total, count = 0.0, 0
        for rows in _batches(n, schedule.batch_size, generator):
            loss = model(**make_batch(rows)).loss
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            decay.step()
            total, count = total + loss.item() * len(rows), count + len(rows)
        mean_loss = total / count
        log(f"epoch {epoch + 1}/{schedule.epochs}: loss {mean_loss:.4f}")
    model.eval()
    return mean_loss


def _save(model, tokenizer, out: Path, record: dict, started: float, log) -> Path:
    """The model folder, with ``training.json``: what it was trained from (no timings, so the same seed gives
    the same files and so the same content hash)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    log(f"saved {out} after {time.perf_counter() - started:.1f} s")
    return out


def train_translation_model(pairs: list[Pair], out, *, seed: int, sizes: Sizes = Sizes(),
                            schedule: Schedule = Schedule(), log=print) -> Path:
    """Train a Marian-config translation model on ``pairs`` and save it under ``out``."""
    _seeded(seed, schedule.threads)
    from transformers import GenerationConfig, MarianConfig, MarianMTModel

    started = time.perf_counter()
    tokenizer = word_level_tokenizer([p.source for p in pairs] + [p.target for p in pairs], seq2seq=True)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    config = MarianConfig(
        vocab_size=len(tokenizer), decoder_vocab_size=len(tokenizer), d_model=sizes.d_model,
        encoder_layers=sizes.layers, decoder_layers=sizes.layers, encoder_attention_heads=sizes.heads,
        decoder_attention_heads=sizes.heads, encoder_ffn_dim=sizes.ffn, decoder_ffn_dim=sizes.ffn,
        max_position_embeddings=sizes.max_positions, pad_token_id=pad, eos_token_id=eos,
        decoder_start_token_id=pad, forced_eos_token_id=eos, share_encoder_decoder_embeddings=True,
        # scaled token embeddings: unscaled (std 0.02) they drown under the sinusoidal positions (amplitude 1),
        # and 6 epochs reached only BLEU 61 instead of 99.9
        scale_embedding=True, dropout=0.1, activation_function="gelu")
    model = MarianMTModel(config)
    model.generation_config = GenerationConfig(decoder_start_token_id=pad, eos_token_id=eos, pad_token_id=pad,
                                               forced_eos_token_id=eos, num_beams=1, do_sample=False)
    sources = tokenizer([p.source for p in pairs], is_split_into_words=True, padding=True, return_tensors="pt")
    targets = tokenizer([p.target for p in pairs], is_split_into_words=True, padding=True, return_tensors="pt")
    labels = targets["input_ids"].masked_fill(targets["attention_mask"] == 0, -100)

    def batch(rows):
        width = int(sources["attention_mask"][rows].sum(1).max())
        label_width = int((labels[rows] != -100).sum(1).max())
        return {"input_ids": sources["input_ids"][rows, :width],
                "attention_mask": sources["attention_mask"][rows, :width], "labels": labels[rows, :label_width]}

    log(f"translation model, seed {seed}: {len(pairs):,} pairs, vocabulary {len(tokenizer)}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    loss = _fit(model, batch, len(pairs), schedule, seed, log)
    return _save(model, tokenizer, Path(out), {
        "kind": "translation", "seed": seed, "pairs": len(pairs), "sizes": asdict(sizes),
        "schedule": asdict(schedule), "final_loss": round(loss, 6)}, started, log)


def train_causal_lm(sentences: list[list[str]], out, *, seed: int, sizes: Sizes = Sizes(),
                    schedule: Schedule = Schedule(), log=print) -> Path:
    """Train a GPT-2-config language model on ``sentences`` (lists of words) and save it under ``out``."""
    _seeded(seed, schedule.threads)
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    started = time.perf_counter()
    tokenizer = word_level_tokenizer(sentences, seq2seq=False)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=sizes.d_model, n_layer=sizes.layers, n_head=sizes.heads,
                        n_inner=sizes.ffn, n_positions=sizes.max_positions, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = GPT2LMHeadModel(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, max_new_tokens=20,
                                               do_sample=False)
    # each sentence ends with its eos, so the model learns where a sentence stops
    encoded = tokenizer([s + [EOS] for s in sentences], is_split_into_words=True, padding=True, return_tensors="pt")
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)

    def batch(rows):
        width = int(encoded["attention_mask"][rows].sum(1).max())
        return {"input_ids": encoded["input_ids"][rows, :width],
                "attention_mask": encoded["attention_mask"][rows, :width], "labels": labels[rows, :width]}

    log(f"causal LM, seed {seed}: {len(sentences):,} sentences, vocabulary {len(tokenizer)}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    loss = _fit(model, batch, len(sentences), schedule, seed, log)
    return _save(model, tokenizer, Path(out), {
        "kind": "causal_lm", "seed": seed, "sentences": len(sentences), "sizes": asdict(sizes),
        "schedule": asdict(schedule), "final_loss": round(loss, 6)}, started, log)


# ------------------------------------------------------------------------------------------------ evaluation


def translate(model_dir, sources: list[list[str]], *, batch_size: int = 128) -> list[list[str]]:
    """Greedy translations of ``sources`` (lists of words) as lists of target tokens."""
    import torch
    from transformers import AutoTokenizer, MarianMTModel

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = MarianMTModel.from_pretrained(model_dir).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(sources), batch_size):
            batch = tokenizer(sources[i : i + batch_size], is_split_into_words=True, padding=True,
                              return_tensors="pt")
            generated = model.generate(**batch, max_new_tokens=MAX_TRANSLATION_TOKENS)
            out += [tokenizer.decode(row, skip_special_tokens=True).split() for row in generated]
    return out


def verb_forms(tokens: list[str]) -> list[tuple[str, str, str]]:
    """(stem, tense token, number token) of each verb of a translation, in order."""
    tenses, numbers = set(TENSE_SUFFIX.values()), set(NUMBER_SUFFIX.values())
    return [(tokens[i - 1] if i else "", t, tokens[i + 1] if i + 1 < len(tokens) else "")
            for i, t in enumerate(tokens) if t in tenses and i + 1 < len(tokens) and tokens[i + 1] in numbers]


def translation_quality(hypotheses: list[list[str]], references: list[list[str]]) -> dict:
    """BLEU (sacrebleu, corpus level), exact sentences, and verb forms right (stem, tense and agreement), in %."""
    import sacrebleu

    bleu = sacrebleu.corpus_bleu([" ".join(h) for h in hypotheses], [[" ".join(r) for r in references]]).score
    exact = sum(h == r for h, r in zip(hypotheses, references))
    verbs_right = verbs = 0
    for h, r in zip(hypotheses, references):
        expected, produced = verb_forms(r), verb_forms(h)
        verbs += len(expected)
        verbs_right += sum(e == p for e, p in zip(expected, produced)) if len(produced) == len(expected) else 0
    return {"bleu": bleu, "exact_percent": 100 * exact / len(references),
            "verb_forms_percent": 100 * verbs_right / max(verbs, 1), "sentences": len(references)}
