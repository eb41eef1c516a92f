"""Loading a model directory (weights, or only its tokenizer and config for planning), the model's limits and
pad id, the device, and the model's neuron sites found from its module structure.

Neuron sets (methods.md §1; names as in :mod:`analysis.engine.neurons`):

* ``hidden``: layer 0 is the input of the first transformer block (the embeddings after whatever the model
  adds to them: positions, scaling, an embedding LayerNorm), layer ``i`` is the output of block ``i-1``.
  Layer 0 is taken as the first block's *input* rather than the embedding module's output because for BART,
  Marian and T5 the embedding module's output is not yet the representation the blocks see (positions, scale
  and LayerNorm are added afterwards in the stack); the first block's input is exactly ``hidden_states[0]``
  of ``output_hidden_states`` for every architecture. The last layer is the raw output of the last block
  (GPT-2, Llama and T5 apply a final LayerNorm that ``hidden_states[-1]`` includes; we keep per-block outputs
  so every layer means the same thing).
* ``mlp``: the input of each block's FFN output projection: the activation after the non-linearity,
  ``act(gate) * up`` for gated (Llama, T5 v1.1) MLPs.

Encoder-decoder models get ``enc.hidden``, ``enc.mlp``, ``dec.hidden``, ``dec.mlp``.

A :class:`Site` with ``mode="output"`` means the neurons are the module's output (the first element when it
returns a tuple); ``mode="input"`` means they are its first positional input (read or changed with a forward
*pre*-hook). Torch and transformers are imported inside functions so importing this module is cheap.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .modeldir import ModelDirError, ModelInfo, inspect_model_dir
from .neurons import HIDDEN, MLP

# config attributes that name the FFN (intermediate) width, across architectures
_FFN_WIDTH_ATTRS = (
    "intermediate_size",
    "n_inner",
    "d_ff",
    "ffn_dim",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "ffn_hidden_size",
    "inner_dim",
)
_HIDDEN_SIZE_ATTRS = ("hidden_size", "d_model", "n_embd", "dim")
_POSITION_LIMIT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
_UNBOUNDED_LENGTH = 1_000_000  # tokenizers without a limit report a huge model_max_length


class UnsupportedArchitecture(ValueError):
    """The model's module structure could not be mapped to neuron sets."""


class ModelLoadError(ValueError):
    """The directory passed inspection but the model or its tokenizer cannot be used."""


@dataclass(frozen=True)
class Site:
    neuron_set: str
    layer: int
    module: Any  # torch.nn.Module
    units: int
    mode: str  # "output" (module output, first element of a tuple) or "input" (first positional input)
    name: str = ""  # dotted module name inside the model, for messages

    @property
    def key(self) -> tuple[str, int]:
        return (self.neuron_set, self.layer)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    kind: str  # 'encoder' | 'decoder' | 'encoder-decoder'
    info: ModelInfo
    device: Any
    dtype: Any
    path: str = ""
    sites: dict = field(default_factory=dict, repr=False)

    def neuron_sites(self) -> dict[str, list[Site]]:
        if not self.sites:
            self.sites = neuron_sites(self.model)
        return self.sites


# ---------------------------------------------------------------------------------------------- neuron sites


def _hidden_size(config) -> int:
    for attr in _HIDDEN_SIZE_ATTRS:
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise UnsupportedArchitecture(
        f"cannot tell the hidden size of {type(config).__name__}: none of {', '.join(_HIDDEN_SIZE_ATTRS)} is set"
    )


def _ffn_widths(config, hidden_size: int) -> set[int]:
    widths = {getattr(config, a) for a in _FFN_WIDTH_ATTRS if isinstance(getattr(config, a, None), int)}
    if getattr(config, "n_inner", 0) is None:  # GPT-2 family: None means 4 × hidden
        widths.add(4 * hidden_size)
    return widths


def _projection_shape(module) -> tuple[int, int] | None:
    """(in_features, out_features) of a Linear or a GPT-2 style Conv1D, else None."""
    import torch

    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "weight") and module.weight.dim() == 2:
        return module.weight.shape[0], module.weight.shape[1]  # Conv1D stores [in, out]
    return None


def _ffn_output_projection(block, hidden_size: int, widths: set[int]):
    """The (name, module) of the block's FFN output projection, or None."""
    projections = [(n, m, s) for n, m in block.named_modules() if (s := _projection_shape(m)) is not None]
    matches = [(n, m, s) for n, m, s in projections if s[1] == hidden_size and s[0] in widths]
    if not matches:  # config does not name the width: a unique hidden-size projection from something wider
        matches = [(n, m, s) for n, m, s in projections if s[1] == hidden_size and s[0] > hidden_size]
    if len(matches) != 1:
        return None
    name, module, _ = matches[0]
    return name, module


def _block_lists(model, hidden_size: int, widths: set[int]):
    """ModuleLists whose every element contains exactly one FFN output projection: the transformer stacks."""
    import torch

    stacks = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) == 0:
            continue
        if any(name.startswith(outer + ".") for outer, _, _ in stacks):
            continue  # a list inside a block (T5's block.layer) is not a stack
        projections = [_ffn_output_projection(block, hidden_size, widths) for block in module]
        if all(p is not None for p in projections):
            stacks.append((name, module, projections))
    return stacks


def _stack_sites(prefix: str, stack_name: str, blocks, projections, hidden_size: int) -> dict[str, list[Site]]:
    hidden_set, mlp_set = f"{prefix}{HIDDEN}", f"{prefix}{MLP}"
    hidden = [Site(hidden_set, 0, blocks[0], hidden_size, "input", f"{stack_name}.0")]
    mlp = []
    for index, (block, (proj_name, proj)) in enumerate(zip(blocks, projections)):
        block_name = f"{stack_name}.{index}"
        hidden.append(Site(hidden_set, index + 1, block, hidden_size, "output", block_name))
        units = _projection_shape(proj)[0]
        mlp.append(Site(mlp_set, index, proj, units, "input", f"{block_name}.{proj_name}"))
    return {hidden_set: hidden, mlp_set: mlp}


def neuron_sites(model) -> dict[str, list[Site]]:
    """The neuron sites of ``model`` (a transformers PreTrainedModel), found from its module structure.

    Returns ``{"hidden": [...], "mlp": [...]}`` (layer order), or the ``enc.``/``dec.`` sets for an
    encoder-decoder model. Raises :class:`UnsupportedArchitecture` when the blocks or their FFN output
    projections cannot be found unambiguously.
    """
    config = model.config
    arch = type(model).__name__
    hidden_size = _hidden_size(config)
    widths = _ffn_widths(config, hidden_size)
    stacks = _block_lists(model, hidden_size, widths)
    if not stacks:
        raise UnsupportedArchitecture(
            f"{arch}: no stack of transformer blocks with a feed-forward output projection "
            f"({sorted(widths) or 'unknown width'} → {hidden_size}) was found, so its neurons cannot be mapped. "
            "Supported: BERT-like encoders, GPT-2/Llama-like decoders and T5/BART/Marian-like encoder-decoders."
        )
    if getattr(config, "is_encoder_decoder", False):
        encoder = model.get_encoder() if hasattr(model, "get_encoder") else None
        enc_stacks = [s for s in stacks if encoder is not None and any(s[1] is m for m in encoder.modules())]
        dec_stacks = [s for s in stacks if s not in enc_stacks]
        if len(enc_stacks) != 1 or len(dec_stacks) != 1:
            raise UnsupportedArchitecture(
                f"{arch}: expected one encoder and one decoder stack of blocks, found "
                f"{[s[0] for s in enc_stacks]} and {[s[0] for s in dec_stacks]}"
            )
        sites = _stack_sites("enc.", enc_stacks[0][0], enc_stacks[0][1], enc_stacks[0][2], hidden_size)
        sites.update(_stack_sites("dec.", dec_stacks[0][0], dec_stacks[0][1], dec_stacks[0][2], hidden_size))
        return sites
    if len(stacks) != 1:
        raise UnsupportedArchitecture(
            f"{arch}: found several stacks of blocks ({', '.join(s[0] for s in stacks)}) in a model that is not "
            "an encoder-decoder; cannot tell which one holds its layers"
        )
    name, blocks, projections = stacks[0]
    return _stack_sites("", name, blocks, projections, hidden_size)


def site_value(site: Site, args, output=None):
    """The activation tensor at ``site`` from a hook's ``args`` (mode "input") or ``output``."""
    if site.mode == "input":
        return args[0]
    return output[0] if isinstance(output, (tuple, list)) else output


@contextmanager
def capture(model, sites, transform: Callable | None = None):
    """Record the activations of ``sites`` (an iterable of :class:`Site`) during forward passes.

    Yields a dict ``{(neuron_set, layer): tensor}`` that each forward pass overwrites. With ``transform``,
    ``transform(site, tensor)`` is stored instead (the extractor uses it to keep only the word positions as
    soon as a layer is computed, so a batch never holds every layer at every token). Hooks are removed on exit,
    also after an exception. ``model`` is accepted for symmetry with the intervention helpers and not used.
    """
    recorded: dict[tuple[str, int], Any] = {}
    handles = []

    def make_hook(site: Site):
        def pre_hook(module, args, kwargs):
            tensor = args[0] if args else kwargs.get("hidden_states")
            recorded[site.key] = transform(site, tensor) if transform else tensor.detach()

        def post_hook(module, args, output):
            tensor = site_value(site, args, output)
            recorded[site.key] = transform(site, tensor) if transform else tensor.detach()

        return pre_hook, post_hook

    try:
        for site in sites:
            pre_hook, post_hook = make_hook(site)
            if site.mode == "input":
                handles.append(site.module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            elif site.mode == "output":
                handles.append(site.module.register_forward_hook(post_hook))
            else:
                raise ValueError(f"unknown site mode {site.mode!r}")
        yield recorded
    finally:
        for handle in handles:
            handle.remove()


# ---------------------------------------------------------------------------------------------- loading


def _has_mlm_head_weights(model_dir: Path) -> bool:
    """Whether the safetensors hold a masked-LM head (BERT's ``cls.predictions``, RoBERTa's ``lm_head``...)."""
    from .modeldir import safetensors_tensor_names

    names = safetensors_tensor_names(model_dir)
    return any(n.startswith(("cls.predictions", "lm_head", "predictions", "generator_lm_head")) for n in names)


def pick_device(device=None):
    """``device`` as a torch device; None picks CUDA when there is one, else the CPU."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def dtype_name(half: bool, device) -> str:
    """The dtype a model runs in: float16 only when asked for and on CUDA (float16 on CPU is slow and inexact)."""
    return "float16" if half and pick_device(device).type == "cuda" else "float32"


def model_max_tokens(tokenizer, config, max_length: int | None = None) -> int:
    """Maximum tokens per sequence: the smallest of the tokenizer's and the config's limits and ``max_length``."""
    limits = []
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < _UNBOUNDED_LENGTH:
        limits.append(tokenizer_limit)
    for attr in _POSITION_LIMIT_ATTRS:
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            limits.append(value)
            break
    if max_length:
        limits.append(int(max_length))
    return min(limits) if limits else 512


def pad_token_id(tokenizer_or_model) -> int:
    """The id to pad with: the tokenizer's pad token, else 0 (padded positions are masked out anyway)."""
    tokenizer = getattr(tokenizer_or_model, "tokenizer", tokenizer_or_model)
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def load_tokenizer(model_dir):
    """The directory's fast tokenizer (required: words are aligned with subwords through ``word_ids``)."""
    import transformers

    model_dir = Path(model_dir)
    options = dict(use_fast=True, trust_remote_code=False, local_files_only=True)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), **options)
        if getattr(tokenizer, "add_prefix_space", None) is False:
            # byte-level BPE (GPT-2, RoBERTa): words given one by one must be encoded as they appear mid-sentence,
            # with their leading space, or every word is tokenised like a sentence start
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), add_prefix_space=True, **options)
    except (ValueError, OSError, KeyError) as exc:
        raise ModelLoadError(f"{model_dir.name}: the tokenizer could not be loaded: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{model_dir.name}: a fast tokenizer (tokenizer.json) is required to align subwords with words; "
            "save one with tokenizer.save_pretrained(dir) from a PreTrainedTokenizerFast"
        )
    return tokenizer


@dataclass
class ModelOutline:
    """A model without its weights: what planning an extraction needs (tokenizer, limits, neuron sites)."""

    tokenizer: Any
    config: Any
    kind: str
    info: ModelInfo
    sites: dict  # neuron sites of a weightless copy (meta tensors): their layers and units are exact


def load_outline(model_dir) -> ModelOutline:
    """The tokenizer, config and neuron sites of ``model_dir`` without reading (or hashing) the weights."""
    import torch
    import transformers

    model_dir = Path(model_dir)
    info = inspect_model_dir(model_dir, hash_files=False)
    try:
        config = transformers.AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False,
                                                         local_files_only=True)
        with torch.device("meta"):  # modules with shapes and no storage
            skeleton = transformers.AutoModel.from_config(config, trust_remote_code=False)
    except (ValueError, OSError, KeyError) as exc:
        raise ModelLoadError(f"{model_dir.name}: the model's config could not be used: {exc}") from exc
    return ModelOutline(load_tokenizer(model_dir), config, info.kind, info, neuron_sites(skeleton))


def load_model(model_dir, device=None, half: bool = False, *, sha256: str | None = None,
               verify: bool = False) -> LoadedModel:
    """Load a HF model directory safely: safetensors only, no remote code, local files only.

    ``sha256``: the directory's combined hash when the caller knows it (an upload row records it); the files
    are then not hashed again, unless ``verify`` asks to check them against it (a mismatch raises
    :class:`ModelLoadError`). Without it every file is hashed to fill ``info.sha256``.

    Encoders load with their masked-LM head when the weights hold one (so masked-LM loss and fill-mask work),
    else as a bare ``AutoModel``; decoders as causal LMs; encoder-decoders as seq2seq LMs. ``half`` applies only
    on CUDA (:func:`dtype_name`). A fast tokenizer is required for word alignment.
    """
    import torch
    import transformers

    model_dir = Path(model_dir)
    info = inspect_model_dir(model_dir, sha256=None if verify else sha256)
    if verify and sha256 and info.sha256 != sha256:
        raise ModelLoadError(
            f"{model_dir.name}: the files hash to {info.sha256}, not the recorded {sha256}; "
            "the model folder changed after it was recorded"
        )
    device = pick_device(device)
    dtype = getattr(torch, dtype_name(half, device))

    if info.kind == "encoder-decoder":
        auto_classes = [transformers.AutoModelForSeq2SeqLM]
    elif info.kind == "decoder":
        auto_classes = [transformers.AutoModelForCausalLM]
    elif _has_mlm_head_weights(model_dir):
        auto_classes = [transformers.AutoModelForMaskedLM, transformers.AutoModel]
    else:
        auto_classes = [transformers.AutoModel]

    transformers.utils.logging.disable_progress_bar()  # no tqdm bars in worker logs
    options = dict(use_safetensors=True, trust_remote_code=False, local_files_only=True, dtype=dtype)
    errors = []
    model = None
    for auto_class in auto_classes:
        try:
            model = auto_class.from_pretrained(str(model_dir), **options)
            break
        except (ValueError, OSError, KeyError) as exc:
            errors.append(f"{auto_class.__name__}: {exc}")
    if model is None:
        raise ModelLoadError(f"{model_dir.name}: the model could not be loaded: " + "; ".join(errors))
    model.to(device).eval()
    return LoadedModel(model, load_tokenizer(model_dir), info.kind, info, device, dtype, str(model_dir))


__all__ = [
    "Site",
    "LoadedModel",
    "UnsupportedArchitecture",
    "ModelLoadError",
    "ModelDirError",
    "neuron_sites",
    "capture",
    "site_value",
    "load_model",
    "load_tokenizer",
    "load_outline",
    "ModelOutline",
    "model_max_tokens",
    "pad_token_id",
    "pick_device",
    "dtype_name",
]
