"""Model directory inspection: safetensors only, known architectures, no remote code, no weights loaded."""

import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.engine.modeldir import ModelDirError, inspect_model_dir
from tests.support.tiny_models import tiny_model_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bert_copy(tmp_path):
    target = tmp_path / "bert"
    shutil.copytree(tiny_model_dir("bert"), target)
    return target


def _parameter_count(model_dir):
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="numpy") as handle:
        return sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())


def test_describes_a_bert_directory(bert_copy):
    info = inspect_model_dir(bert_copy)
    assert info.model_type == "bert"
    assert info.architecture == "BertForMaskedLM"
    assert info.kind == "encoder"
    assert info.n_layers == 2 and info.hidden_size == 32
    assert info.n_parameters == _parameter_count(bert_copy)
    config_hash = hashlib.sha256((bert_copy / "config.json").read_bytes()).hexdigest()
    assert info.files["config.json"] == config_hash
    assert "model.safetensors" in info.files and "tokenizer.json" in info.files
    assert info.total_bytes == sum(p.stat().st_size for p in bert_copy.iterdir() if p.is_file())
    assert info.has_fast_tokenizer
    as_dict = info.to_dict()
    assert json.loads(json.dumps(as_dict))["sha256"] == info.sha256


def test_whole_hash_follows_any_file_change(bert_copy):
    before = inspect_model_dir(bert_copy).sha256
    assert inspect_model_dir(bert_copy).sha256 == before
    with open(bert_copy / "vocab.txt", "a") as handle:
        handle.write("extra\n")
    assert inspect_model_dir(bert_copy).sha256 != before


@pytest.mark.parametrize("arch, kind", [("gpt2", "decoder"), ("llama", "decoder"), ("t5", "encoder-decoder"),
                                        ("marian", "encoder-decoder")])
def test_kinds(arch, kind):
    assert inspect_model_dir(tiny_model_dir(arch)).kind == kind


def test_bare_decoder_architecture_is_a_decoder(tmp_path):
    # GPT2Model (no LM head) is still a decoder: gpt2 has a causal-LM class and no masked-LM one
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2Model"]}))
    shutil.copy(tiny_model_dir("gpt2") / "model.safetensors", tmp_path / "model.safetensors")
    assert inspect_model_dir(tmp_path).kind == "decoder"


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.ckpt", "sub/optimizer.pkl"])
def test_pickle_weights_are_refused(bert_copy, name):
    (bert_copy / name).parent.mkdir(exist_ok=True)
    (bert_copy / name).write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelDirError) as error:
        inspect_model_dir(bert_copy)
    message = str(error.value)
    assert name in message
    assert "arbitrary code" in message
    assert "safe_serialization=True" in message


def test_safetensors_required(bert_copy):
    (bert_copy / "model.safetensors").unlink()
    with pytest.raises(ModelDirError, match="no \\*.safetensors weights"):
        inspect_model_dir(bert_copy)


def test_missing_shard_named_in_index(bert_copy):
    (bert_copy / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}})
    )
    with pytest.raises(ModelDirError, match="model-00002-of-00002.safetensors"):
        inspect_model_dir(bert_copy)


def test_broken_safetensors_header(bert_copy):
    (bert_copy / "model.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelDirError, match="not a valid safetensors file"):
        inspect_model_dir(bert_copy)


def test_config_json_errors_name_line_and_column(bert_copy):
    (bert_copy / "config.json").write_text('{\n  "model_type": "bert",\n  "hidden_size": 32,,\n}')
    with pytest.raises(ModelDirError, match="line 3, column"):
        inspect_model_dir(bert_copy)
    (bert_copy / "config.json").unlink()
    with pytest.raises(ModelDirError, match="config.json is missing"):
        inspect_model_dir(bert_copy)


def test_unknown_architecture_is_refused(bert_copy):
    config = json.loads((bert_copy / "config.json").read_text())
    config["model_type"] = "my-private-net"
    (bert_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match="'my-private-net' is not an architecture that the installed transformers"):
        inspect_model_dir(bert_copy)


def test_custom_code_is_refused(bert_copy):
    config = json.loads((bert_copy / "config.json").read_text())
    config["model_type"] = "fancy"
    config["auto_map"] = {"AutoModel": "modeling_fancy.FancyModel"}
    (bert_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match="custom code|own code"):
        inspect_model_dir(bert_copy)


def test_inspection_does_not_import_torch():
    code = (
        "import sys; from analysis.engine.modeldir import inspect_model_dir; "
        f"info = inspect_model_dir({str(tiny_model_dir('bert'))!r}); "
        "assert info.n_parameters > 0; print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
