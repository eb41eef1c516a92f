"""The tiny test models: complete, offline-loadable HF directories with a fast tokenizer and consistent ids."""

import json

import pytest

from tests.support.tiny_models import (
    ARCHITECTURES,
    BOS_ID,
    CAUSAL,
    EOS_ID,
    PAD_ID,
    SEQ2SEQ,
    build_tiny_model,
    fit_tiny_causal_lm,
    make_tiny_model,
    tiny_model_dir,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)


def _auto_class(arch):
    if arch == "bert":
        return transformers.AutoModelForMaskedLM
    return transformers.AutoModelForCausalLM if arch in CAUSAL else transformers.AutoModelForSeq2SeqLM


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_saved_model_loads_offline_with_fast_tokenizer(arch):
    path = tiny_model_dir(arch)
    assert (path / "model.safetensors").is_file()
    assert not list(path.glob("*.bin"))
    config = json.loads((path / "config.json").read_text())
    assert config["pad_token_id"] == PAD_ID and config["eos_token_id"] == EOS_ID
    if arch in SEQ2SEQ:
        assert config["decoder_start_token_id"] == BOS_ID

    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = _auto_class(arch).from_pretrained(path, local_files_only=True).eval()
    assert tokenizer.is_fast
    assert model.config.vocab_size == len(tokenizer)

    batch = tokenizer([["Hello", "unbelievably", "big"]], is_split_into_words=True, return_tensors="pt")
    word_ids = batch.word_ids(0)
    assert [w for w in word_ids if w is not None] == sorted(w for w in word_ids if w is not None)
    assert {w for w in word_ids if w is not None} == {0, 1, 2}
    ids = batch["input_ids"][0].tolist()
    if arch in CAUSAL:
        assert ids[0] == BOS_ID and ids[-1] != EOS_ID
    elif arch in SEQ2SEQ:
        assert ids[-1] == EOS_ID and ids[0] != BOS_ID
    else:
        assert ids[0] == BOS_ID and ids[-1] == EOS_ID

    with torch.inference_mode():
        if arch in SEQ2SEQ:
            out = model.generate(**batch, max_new_tokens=3, do_sample=False)
            assert out.shape[1] >= 2
        elif arch in CAUSAL:
            out = model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=PAD_ID)
            assert out.shape[1] == batch["input_ids"].shape[1] + 3
        else:
            logits = model(**batch).logits
            assert logits.shape[-1] == len(tokenizer)


def test_builds_are_seeded_and_sizes_configurable(tmp_path):
    first = build_tiny_model("gpt2", layers=3, hidden=48)
    second = build_tiny_model("gpt2", layers=3, hidden=48)
    assert first.config.n_layer == 3 and first.config.n_embd == 48
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    other_seed = build_tiny_model("gpt2", layers=3, hidden=48, seed=1)
    assert not torch.equal(first.transformer.h[0].mlp.c_fc.weight, other_seed.transformer.h[0].mlp.c_fc.weight)

    path = make_tiny_model("llama", tmp_path / "llama", layers=1)
    assert json.loads((path / "config.json").read_text())["num_hidden_layers"] == 1


def test_fitting_makes_the_causal_lm_learn():
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model_dir("gpt2"))
    model = build_tiny_model("gpt2")
    batch = tokenizer(["the cat sat on the mat ."], return_tensors="pt")
    with torch.inference_mode():
        before = model(**batch, labels=batch["input_ids"]).loss.item()
    fit_tiny_causal_lm(model, tokenizer, steps=30)
    with torch.inference_mode():
        after = model(**batch, labels=batch["input_ids"]).loss.item()
    assert not model.training
    assert after < before / 2
