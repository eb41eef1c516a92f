"""Model loading and neuron sites found from the module structure, on tiny models built from configs."""

import json
import shutil
from types import SimpleNamespace

import pytest
import torch

from analysis.engine.loading import (
    ModelLoadError,
    UnsupportedArchitecture,
    capture,
    load_model,
    load_outline,
    model_max_tokens,
    neuron_sites,
    pad_token_id,
)
from analysis.engine.modeldir import ModelDirError, inspect_model_dir
from tests.support.tiny_models import build_tiny_model, tiny_model_dir

torch.set_num_threads(1)

IDS = torch.tensor([[101, 1996, 4937, 2938, 2006, 102], [101, 1037, 3899, 102, 0, 0]])
MASK = (IDS != 0).long()

# (sets, blocks per stack, FFN width) for the default tiny sizes (2 layers, hidden 32, ffn 64)
EXPECTED = {
    "bert": ["hidden", "mlp"],
    "gpt2": ["hidden", "mlp"],
    "llama": ["hidden", "mlp"],
    "t5": ["enc.hidden", "enc.mlp", "dec.hidden", "dec.mlp"],
    "bart": ["enc.hidden", "enc.mlp", "dec.hidden", "dec.mlp"],
    "marian": ["enc.hidden", "enc.mlp", "dec.hidden", "dec.mlp"],
}
# raw block outputs equal output_hidden_states except where the stack applies a final norm to the last one
FINAL_NORM = {"gpt2", "llama", "t5"}


def _forward(model, arch, **extra):
    if arch in ("t5", "bart", "marian"):
        return model(input_ids=IDS, attention_mask=MASK, decoder_input_ids=IDS[:, :4], output_hidden_states=True)
    return model(input_ids=IDS, attention_mask=MASK, output_hidden_states=True)


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_sites_match_hidden_states_and_ffn_width(arch):
    model = build_tiny_model(arch)
    sites = neuron_sites(model)
    assert list(sites) == EXPECTED[arch]
    for name, layer_sites in sites.items():
        is_hidden = name.endswith("hidden")
        assert [s.layer for s in layer_sites] == list(range(3 if is_hidden else 2))
        assert all(s.units == (32 if is_hidden else 64) for s in layer_sites)
        assert all(s.mode == ("output" if is_hidden and s.layer > 0 else "input") for s in layer_sites)

    every_site = [s for layer_sites in sites.values() for s in layer_sites]
    with torch.inference_mode():
        _forward(model, arch)  # transformers installs its own output-recording hooks on a first call
    hooks_before = [(len(s.module._forward_hooks), len(s.module._forward_pre_hooks)) for s in every_site]
    with torch.inference_mode(), capture(model, every_site) as recorded:
        output = _forward(model, arch)
    if arch in ("t5", "bart", "marian"):
        reference = {"enc.hidden": output.encoder_hidden_states, "dec.hidden": output.decoder_hidden_states}
    else:
        reference = {"hidden": output.hidden_states}
    for name, states in reference.items():
        last = len(states) - 1
        for layer, state in enumerate(states):
            if layer == last and arch in FINAL_NORM:
                assert not torch.allclose(recorded[(name, layer)], state)
                continue
            torch.testing.assert_close(recorded[(name, layer)], state)
    for (name, layer), tensor in recorded.items():
        if name.endswith("mlp"):
            assert tensor.shape[-1] == 64
    # our hooks are gone after the block (transformers keeps hooks of its own on some modules)
    assert [(len(s.module._forward_hooks), len(s.module._forward_pre_hooks)) for s in every_site] == hooks_before


def test_bert_mlp_site_is_the_activation_after_the_nonlinearity():
    model = build_tiny_model("bert")
    site = neuron_sites(model)["mlp"][1]
    intermediate = model.bert.encoder.layer[1].intermediate
    seen = {}
    handle = intermediate.register_forward_hook(lambda m, a, out: seen.setdefault("act", out))
    with torch.inference_mode(), capture(model, [site]) as recorded:
        model(input_ids=IDS, attention_mask=MASK)
    handle.remove()
    torch.testing.assert_close(recorded[("mlp", 1)], seen["act"])


def test_llama_mlp_site_is_gated_product():
    model = build_tiny_model("llama")
    site = neuron_sites(model)["mlp"][0]
    mlp = model.model.layers[0].mlp
    seen = {}
    handle = mlp.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    with torch.inference_mode(), capture(model, [site]) as recorded:
        model(input_ids=IDS, attention_mask=MASK)
        expected = mlp.act_fn(mlp.gate_proj(seen["x"])) * mlp.up_proj(seen["x"])
    handle.remove()
    torch.testing.assert_close(recorded[("mlp", 0)], expected)


def test_gpt2_conv1d_projection_and_transform():
    model = build_tiny_model("gpt2")
    sites = neuron_sites(model)
    assert sites["mlp"][0].name.endswith("mlp.c_proj")
    with torch.inference_mode(), capture(model, sites["hidden"], transform=lambda s, t: t[:, 0].sum()) as recorded:
        model(input_ids=IDS, attention_mask=MASK)
    assert all(v.dim() == 0 for v in recorded.values()) and len(recorded) == 3


def test_unmappable_model_is_refused():
    class NoBlocks(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(hidden_size=8, intermediate_size=16, is_encoder_decoder=False)
            self.proj = torch.nn.Linear(8, 8)

    with pytest.raises(UnsupportedArchitecture, match="no stack of transformer blocks"):
        neuron_sites(NoBlocks())

    class NoSize(torch.nn.Module):
        config = SimpleNamespace()

    with pytest.raises(UnsupportedArchitecture, match="hidden size"):
        neuron_sites(NoSize())


@pytest.mark.parametrize("arch, class_name, kind", [
    ("bert", "BertForMaskedLM", "encoder"),
    ("gpt2", "GPT2LMHeadModel", "decoder"),
    ("t5", "T5ForConditionalGeneration", "encoder-decoder"),
])
def test_load_model(arch, class_name, kind):
    loaded = load_model(tiny_model_dir(arch))
    assert type(loaded.model).__name__ == class_name
    assert loaded.kind == kind == loaded.info.kind
    assert loaded.device.type == "cpu" and loaded.dtype == torch.float32
    assert not loaded.model.training
    assert loaded.tokenizer.is_fast
    assert set(loaded.neuron_sites()) == set(EXPECTED[arch])


def test_encoder_without_mlm_head_loads_as_bare_model(tmp_path):
    from transformers import BertModel

    source = tiny_model_dir("bert")
    config = json.loads((source / "config.json").read_text())
    bare = BertModel(build_tiny_model("bert").config)
    bare.save_pretrained(tmp_path, safe_serialization=True)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, tmp_path / name)
    assert config["model_type"] == "bert"
    loaded = load_model(tmp_path)
    assert type(loaded.model).__name__ == "BertModel"


def test_a_known_hash_is_not_recomputed_and_is_checked_when_asked(tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir("bert"), model_dir)
    recorded = inspect_model_dir(model_dir).sha256
    (model_dir / "notes.txt").write_text("added after the upload was recorded")

    trusted = load_model(model_dir, sha256=recorded)
    assert trusted.info.sha256 == recorded and trusted.info.files == {}  # no file was hashed
    with pytest.raises(ModelLoadError, match=f"not the recorded {recorded}; the model folder changed"):
        load_model(model_dir, sha256=recorded, verify=True)

    (model_dir / "notes.txt").unlink()
    verified = load_model(model_dir, sha256=recorded, verify=True)
    assert verified.info.sha256 == recorded and "model.safetensors" in verified.info.files
    assert load_model(model_dir).info.sha256 == recorded  # no known hash: every file is hashed


def test_pad_id_and_length_limit_helpers():
    loaded = load_model(tiny_model_dir("gpt2"))
    assert loaded.tokenizer.pad_token_id is not None
    assert pad_token_id(loaded) == pad_token_id(loaded.tokenizer) == loaded.tokenizer.pad_token_id
    assert pad_token_id(SimpleNamespace(pad_token_id=None)) == 0
    unbounded = SimpleNamespace(model_max_length=int(1e30))
    assert model_max_tokens(unbounded, SimpleNamespace(n_positions=64)) == 64
    assert model_max_tokens(SimpleNamespace(model_max_length=40), SimpleNamespace(n_positions=64)) == 40
    assert model_max_tokens(unbounded, SimpleNamespace(max_position_embeddings=64), max_length=16) == 16
    assert model_max_tokens(unbounded, SimpleNamespace()) == 512


@pytest.mark.parametrize("arch", ["bert", "gpt2", "t5"])
def test_outline_has_the_loaded_models_sites_without_weights(arch):
    outline = load_outline(tiny_model_dir(arch))
    loaded = load_model(tiny_model_dir(arch))
    shape = lambda sites: {name: [(s.layer, s.units, s.mode) for s in lst] for name, lst in sites.items()}  # noqa: E731
    assert shape(outline.sites) == shape(loaded.neuron_sites())
    assert outline.kind == loaded.kind and outline.info.files == {} and outline.info.sha256 == ""
    assert all(p.device.type == "meta" for site in outline.sites[next(iter(outline.sites))] for p in
               site.module.parameters())
    assert outline.tokenizer.is_fast


def test_load_model_refuses_pickles(tmp_path):
    shutil.copytree(tiny_model_dir("bert"), tmp_path / "m")
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ModelDirError, match="arbitrary code"):
        load_model(tmp_path / "m")


def test_byte_level_bpe_tokenizers_encode_words_with_their_leading_space(tmp_path):
    """GPT-2-style tokenizers are loaded with add_prefix_space, so a word given alone is encoded as mid-sentence."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(["the cat sat on the mat"] * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model_dir = tmp_path / "gpt2"
    shutil.copytree(tiny_model_dir("gpt2"), model_dir)
    for path in model_dir.iterdir():
        if "token" in path.name or path.name == "vocab.txt":
            path.unlink()
    transformers.GPT2TokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>").save_pretrained(model_dir)

    tokenizer = load_model(model_dir).tokenizer
    encoded = tokenizer(["the", "cat"], is_split_into_words=True)
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"]) == ["Ġthe", "Ġcat"]
    assert encoded.word_ids() == [0, 1]
