"""Inspect and validate a HuggingFace model directory without loading its weights or importing torch.

Uploaded models are data, never code: only ``*.safetensors`` weights are accepted (pickle-based files are refused
because unpickling runs arbitrary code), ``config.json`` must name a ``model_type`` that the installed
transformers knows, and custom code (``auto_map``) is never run. Parameter counts come from the safetensors
headers (8-byte little-endian length + JSON), so no tensor is read.

Deviation from the brief: the known model types come from ``transformers.models.auto.auto_mappings`` (the names
behind ``transformers.CONFIG_MAPPING``) because importing ``CONFIG_MAPPING`` itself imports torch in
transformers 5, and the upload validator must stay cheap. The same goes for the causal-LM model types, read
from the source of ``modeling_auto`` rather than imported.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .hashing import combined_sha256, sha256_of

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
SAFETENSORS_INDEX = "model.safetensors.index.json"
_MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on the JSON header

CONVERT_HINT = (
    "convert it once, where you trust the file, with "
    "`AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)` and upload the .safetensors file"
)


class ModelDirError(ValueError):
    """The directory is not a usable model; the message is meant for the person who uploaded it."""


@dataclass
class ModelInfo:
    model_type: str
    architecture: str
    kind: str  # 'encoder' | 'decoder' | 'encoder-decoder'
    n_layers: int | None
    hidden_size: int | None
    n_parameters: int
    files: dict[str, str]  # relative name -> sha256; empty when the files were not hashed
    sha256: str  # combined_sha256 of ``files``, or the hash the caller gave, or "" (not hashed)
    total_bytes: int
    n_decoder_layers: int | None = None
    has_fast_tokenizer: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- helpers


def read_safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file (tensor names → dtype/shape/offsets); no tensor data is read."""
    with open(path, "rb") as handle:
        raw_length = handle.read(8)
        if len(raw_length) != 8:
            raise ModelDirError(f"{path.name} is not a safetensors file: it is shorter than its 8-byte header length")
        (length,) = struct.unpack("<Q", raw_length)
        if length > _MAX_HEADER_BYTES or length > path.stat().st_size - 8:
            raise ModelDirError(f"{path.name} is not a valid safetensors file: its header length is {length} bytes")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelDirError(f"{path.name} is not a valid safetensors file: its header is not JSON ({exc})")
    if not isinstance(header, dict):
        raise ModelDirError(f"{path.name} is not a valid safetensors file: its header is not a JSON object")
    return header


def _count_parameters(header: dict, filename: str) -> int:
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ModelDirError(f"{filename}: tensor {name!r} has no valid shape in the safetensors header")
        total += math.prod(shape)
    return total


def safetensors_tensor_names(model_dir) -> set[str]:
    names: set[str] = set()
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        names.update(k for k in read_safetensors_header(path) if k != "__metadata__")
    return names


@functools.lru_cache(maxsize=1)
def known_model_types() -> frozenset[str]:
    from transformers.models.auto.auto_mappings import CONFIG_MAPPING_NAMES

    return frozenset(CONFIG_MAPPING_NAMES) | {"gpt-sw3"}


@functools.lru_cache(maxsize=1)
def _auto_mapping_model_types() -> dict[str, frozenset[str]]:
    """Model types with a causal-LM / masked-LM class, read from modeling_auto's source without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("transformers.models.auto.modeling_auto")
    wanted = {"MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": "causal", "MODEL_FOR_MASKED_LM_MAPPING_NAMES": "masked"}
    found = {"causal": frozenset(), "masked": frozenset()}
    if spec is None or spec.origin is None:
        return found
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            key = wanted.get(node.targets[0].id)
            if key and isinstance(node.value, ast.Call) and node.value.args:
                try:
                    pairs = ast.literal_eval(node.value.args[0])
                    found[key] = frozenset(model_type for model_type, _ in pairs)
                except (ValueError, TypeError):
                    pass
    return found


_CAUSAL_ARCH_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def model_kind(config: dict) -> str:
    """'encoder-decoder' (``is_encoder_decoder``), 'decoder' (causal-LM architecture, ``is_decoder``, or a model
    type that only has a causal-LM head), else 'encoder'."""
    if config.get("is_encoder_decoder"):
        return "encoder-decoder"
    architectures = config.get("architectures") or []
    if any(a.endswith(_CAUSAL_ARCH_SUFFIXES) for a in architectures if isinstance(a, str)):
        return "decoder"
    if config.get("is_decoder"):
        return "decoder"
    mappings = _auto_mapping_model_types()
    model_type = config.get("model_type")
    if model_type in mappings["causal"] and model_type not in mappings["masked"]:
        return "decoder"
    return "encoder"


def _first_int(config: dict, keys) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise ModelDirError("config.json is missing: a model directory needs the config.json saved with the model")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelDirError(f"config.json is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")
    if not isinstance(config, dict):
        raise ModelDirError("config.json must hold a JSON object")
    return config


def _check_model_type(config: dict) -> str:
    model_type = config.get("model_type")
    has_custom_code = bool(config.get("auto_map"))
    if not model_type or not isinstance(model_type, str):
        if has_custom_code:
            raise ModelDirError(
                "config.json names no model_type and relies on custom code (auto_map); custom model code is never "
                "run here, so only architectures built into transformers can be used"
            )
        raise ModelDirError("config.json names no model_type, so the architecture cannot be identified")
    if model_type not in known_model_types():
        if has_custom_code:
            raise ModelDirError(
                f"model_type {model_type!r} is defined by the model's own code (auto_map), which is never run here "
                "(trust_remote_code is off); only architectures built into transformers can be used"
            )
        raise ModelDirError(
            f"model_type {model_type!r} is not an architecture that the installed transformers knows; "
            "use a model of a standard architecture (BERT, GPT-2, Llama, T5, BART, Marian...)"
        )
    return model_type


# ---------------------------------------------------------------------------------------------- the inspection


def _model_files(root: Path) -> list[Path]:
    """Every file under the directory, sorted, leaving out those inside a ``.git*`` folder."""
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and not any(folder.startswith(".git") for folder in p.relative_to(root).parts[:-1])
    )


def _refuse_pickled_weights(root: Path, files: list[Path]) -> None:
    pickled = [p.relative_to(root).as_posix() for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickled:
        raise ModelDirError(
            f"pickle-based weight files are refused ({', '.join(pickled)}): loading them unpickles, which can run "
            f"arbitrary code. Only safetensors weights are accepted; {CONVERT_HINT}"
        )


def _check_shard_index(root: Path) -> None:
    """When the directory has a safetensors index, it must parse and every shard it names must be there."""
    index_path = root / SAFETENSORS_INDEX
    if not index_path.is_file():
        return
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8")).get("weight_map", {})
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ModelDirError(f"{SAFETENSORS_INDEX} is not a valid index: {exc}")
    missing = sorted({shard for shard in weight_map.values() if not (root / shard).is_file()})
    if missing:
        raise ModelDirError(f"{SAFETENSORS_INDEX} names shards that are missing: {', '.join(missing)}")


def _safetensors_weights(root: Path) -> list[Path]:
    """The top-level ``*.safetensors`` files, sorted; there must be one, and the shard index must hold."""
    weight_files = sorted(p for p in root.glob("*.safetensors"))
    if not weight_files:
        raise ModelDirError(f"no *.safetensors weights found next to config.json; {CONVERT_HINT}")
    _check_shard_index(root)
    return weight_files


def _inspection_warnings(root: Path, config: dict) -> list[str]:
    warnings = []
    if config.get("auto_map"):
        warnings.append("config.json has an auto_map (custom code); it is ignored and the built-in class is used")
    if not (root / "tokenizer.json").is_file():
        warnings.append("no tokenizer.json: a fast tokenizer is needed to align subwords with words")
    return warnings


def inspect_model_dir(path, *, sha256: str | None = None, hash_files: bool = True) -> ModelInfo:
    """Validate a model directory and describe it. Raises :class:`ModelDirError` with a user-facing message.

    Every file is hashed (the weights too: this is the slow part) unless the caller already knows the
    directory's combined hash (an upload row records it) and passes it as ``sha256``, or does not need it
    (``hash_files=False``: ``sha256`` is then empty). Either way ``files`` is then empty.
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelDirError(f"{root} is not a directory")

    files = _model_files(root)
    _refuse_pickled_weights(root, files)

    config = _read_config(root / "config.json")
    model_type = _check_model_type(config)

    weight_files = _safetensors_weights(root)
    n_parameters = sum(_count_parameters(read_safetensors_header(p), p.name) for p in weight_files)

    hashing = hash_files and not sha256
    file_hashes = {p.relative_to(root).as_posix(): sha256_of(p) for p in files} if hashing else {}
    kind = model_kind(config)
    architectures = config.get("architectures") or []
    warnings = _inspection_warnings(root, config)

    return ModelInfo(
        model_type=model_type,
        architecture=architectures[0] if architectures and isinstance(architectures[0], str) else model_type,
        kind=kind,
        n_layers=_first_int(config, ("num_hidden_layers", "n_layer", "num_layers", "encoder_layers", "n_layers")),
        hidden_size=_first_int(config, ("hidden_size", "d_model", "n_embd", "dim")),
        n_parameters=n_parameters,
        files=file_hashes,
        sha256=combined_sha256(file_hashes) if hashing else (sha256 or ""),
        total_bytes=sum(p.stat().st_size for p in files),
        n_decoder_layers=(
            _first_int(config, ("decoder_layers", "num_decoder_layers", "num_layers"))
            if kind == "encoder-decoder"
            else None
        ),
        has_fast_tokenizer=(root / "tokenizer.json").is_file(),
        warnings=warnings,
    )
