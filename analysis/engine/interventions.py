"""Changing chosen neurons inside a running model (methods.md §3 model level, §4 manipulation).

An *edit* says what happens to one neuron: set it to 0 (``zero``), to its corpus mean (``mean``), to a value
(``clamp``), multiply it (``scale``) or add to it (``shift``). :func:`intervene` installs forward hooks on the
neuron sites of :func:`analysis.engine.loading.neuron_sites` that apply the edits during every forward pass in
its ``with`` block, and always removes them on exit.

Every edit is one affine map per unit, ``h' = h·factor + offset`` (``zero``/``mean``/``clamp`` replace the value
outright, so a NaN or inf activation cannot leak through), applied to all units of a site in one indexed
operation, so cost does not grow with the number of edited neurons.

Positions: by default the edit acts at every token position. With ``positions`` (a boolean ``[batch, tokens]``
mask over the *input* tokens, built with :func:`positions_for_words` / :func:`positions_for_labels` from a
fast tokenizer's ``word_ids``) it acts only there. Tokens past the end of the mask (generated ones, when
generating without a key/value cache) are not chosen. A forward pass over fewer tokens than the mask (cached
incremental decoding) cannot be placed and raises, so generate with ``use_cache=False`` when positions are
chosen. Chosen positions refer to the input text, so for encoder-decoder models they apply to ``enc.*`` sites;
asking for positions with ``dec.*`` neurons is refused rather than silently ignored.

SVCCA directions (methods.md §2.4): a :class:`DirectionEdit` on a site replaces ``h`` by ``((h·Bᵀ)·M)·B`` for a
basis ``B`` (``[k, units]``) and a mask ``M`` (``[k]``, 0 erases a direction), literally as in methods.md: with a
complete orthonormal basis this erases only the masked directions; with a reduced basis it also drops what is
outside its span. It is applied before the neuron edits of the same site.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .neurons import NeuronId

OPERATIONS = ("zero", "mean", "clamp", "scale", "shift")
_REPLACING = ("zero", "mean", "clamp")


class InterventionError(ValueError):
    """The requested intervention does not fit the model (unknown neuron, bad positions...)."""


@dataclass(frozen=True)
class NeuronEdit:
    neuron: NeuronId
    operation: str  # one of OPERATIONS
    value: float = 0.0  # mean / clamp value, scale factor or shift amount; ignored for zero

    def __post_init__(self):
        if self.operation not in OPERATIONS:
            raise InterventionError(f"unknown operation {self.operation!r}; choose one of {', '.join(OPERATIONS)}")
        value = float(self.value)
        if value != value or value in (float("inf"), float("-inf")):
            raise InterventionError(f"{self.neuron}: the {self.operation} value must be a finite number, not {value}")

    @property
    def factor_offset(self) -> tuple[float, float]:
        """(factor, offset) of ``h' = h·factor + offset``; factor 0 means the value is replaced."""
        if self.operation == "zero":
            return 0.0, 0.0
        if self.operation in ("mean", "clamp"):
            return 0.0, float(self.value)
        if self.operation == "scale":
            return float(self.value), 0.0
        return 1.0, float(self.value)  # shift


@dataclass(frozen=True)
class DirectionEdit:
    """Keep only the masked combination of basis directions at one site: ``h' = ((h·Bᵀ)·M)·B``."""

    neuron_set: str
    layer: int
    basis: object  # array-like [k, units]
    keep: object  # array-like [k], 1 keeps a direction, 0 erases it


def _broadcast(neurons: Iterable[NeuronId], values, what: str) -> list[tuple[NeuronId, float]]:
    neurons = list(neurons)
    if isinstance(values, Mapping):
        missing = [n.label for n in neurons if n not in values]
        if missing:
            more = " …" if len(missing) > 5 else ""
            raise InterventionError(f"no {what} given for {', '.join(missing[:5])}{more}")
        return [(n, float(values[n])) for n in neurons]
    if isinstance(values, (int, float)):
        return [(n, float(values)) for n in neurons]
    values = [float(v) for v in values]
    if len(values) != len(neurons):
        raise InterventionError(f"{len(neurons)} neurons but {len(values)} {what} values")
    return list(zip(neurons, values))


def zero(neurons: Iterable[NeuronId]) -> list[NeuronEdit]:
    return [NeuronEdit(n, "zero") for n in neurons]


def mean_ablate(neurons: Iterable[NeuronId], means) -> list[NeuronEdit]:
    """Set each neuron to its mean; ``means`` a mapping NeuronId → mean or a sequence aligned with neurons."""
    return [NeuronEdit(n, "mean", v) for n, v in _broadcast(neurons, means, "mean")]


def clamp(neurons: Iterable[NeuronId], values) -> list[NeuronEdit]:
    return [NeuronEdit(n, "clamp", v) for n, v in _broadcast(neurons, values, "clamp")]


def scale(neurons: Iterable[NeuronId], factors) -> list[NeuronEdit]:
    return [NeuronEdit(n, "scale", v) for n, v in _broadcast(neurons, factors, "scale")]


def shift(neurons: Iterable[NeuronId], amounts) -> list[NeuronEdit]:
    return [NeuronEdit(n, "shift", v) for n, v in _broadcast(neurons, amounts, "shift")]


# ---------------------------------------------------------------------------------------------- positions


def positions_for_words(encoding, chosen_words: Sequence[Iterable[int]]):
    """Boolean ``[batch, tokens]`` mask of the tokens (every subword) of the chosen word indices per sentence.

    ``encoding``: the fast tokenizer's output for the batch (``is_split_into_words=True``); ``chosen_words[b]``:
    word indices in sentence ``b``.
    """
    import torch

    input_ids = encoding["input_ids"]
    if len(chosen_words) != input_ids.shape[0]:
        raise InterventionError(f"chosen words given for {len(chosen_words)} sentences, batch has {input_ids.shape[0]}")
    mask = torch.zeros(input_ids.shape, dtype=torch.bool)
    for b, words in enumerate(chosen_words):
        chosen = set(int(w) for w in words)
        for t, word in enumerate(encoding.word_ids(b)):
            if word is not None and word in chosen:
                mask[b, t] = True
    return mask


def positions_for_labels(encoding, labels: Sequence[Sequence[str]], chosen_labels: Iterable[str]):
    """Boolean ``[batch, tokens]`` mask of the tokens whose word's label is one of ``chosen_labels``."""
    chosen_labels = set(chosen_labels)
    if len(labels) != encoding["input_ids"].shape[0]:
        raise InterventionError(f"labels given for {len(labels)} sentences, batch has {encoding['input_ids'].shape[0]}")
    words = [[i for i, label in enumerate(sentence) if label in chosen_labels] for sentence in labels]
    return positions_for_words(encoding, words)


# ---------------------------------------------------------------------------------------------- hooks


class _SiteEdits:
    """The edits of one site as tensors, applied in one indexed operation."""

    def __init__(self, site, edits: list[NeuronEdit], direction: DirectionEdit | None):
        import torch

        self.site = site
        units = [e.neuron.unit for e in edits]
        bad = [e.neuron.label for e in edits if not 0 <= e.neuron.unit < site.units]
        if bad:
            raise InterventionError(f"{', '.join(bad[:5])}: unit out of range, {site.neuron_set} layer {site.layer} "
                                    f"has {site.units} units")
        self.units = torch.tensor(units, dtype=torch.long)
        pairs = [e.factor_offset for e in edits]
        self.factor = torch.tensor([p[0] for p in pairs], dtype=torch.float32)
        self.offset = torch.tensor([p[1] for p in pairs], dtype=torch.float32)
        self.replace = torch.tensor([e.operation in _REPLACING for e in edits], dtype=torch.bool)
        self.basis = self.keep = None
        if direction is not None:
            basis = torch.as_tensor(direction.basis, dtype=torch.float32)
            keep = torch.as_tensor(direction.keep, dtype=torch.float32).reshape(-1)
            if basis.dim() != 2 or basis.shape[1] != site.units or keep.shape[0] != basis.shape[0]:
                raise InterventionError(
                    f"direction edit at {site.neuron_set} layer {site.layer}: basis must be [k, {site.units}] and "
                    f"keep [k], got {tuple(basis.shape)} and {tuple(keep.shape)}"
                )
            self.basis, self.keep = basis, keep
        self._on = None  # (device, dtype) the tensors were last moved to

    def _to(self, like):
        key = (like.device, like.dtype)
        if self._on != key:
            self.units = self.units.to(like.device)
            self.factor = self.factor.to(like.device, like.dtype)
            self.offset = self.offset.to(like.device, like.dtype)
            self.replace = self.replace.to(like.device)
            if self.basis is not None:
                self.basis = self.basis.to(like.device, like.dtype)
                self.keep = self.keep.to(like.device, like.dtype)
            self._on = key

    def apply(self, hidden, mask):
        import torch

        self._to(hidden)
        edited = hidden
        if self.basis is not None:
            projected = ((hidden @ self.basis.T) * self.keep) @ self.basis
            edited = projected if mask is None else torch.where(mask[..., None], projected, hidden)
        if len(self.units):
            current = edited.index_select(-1, self.units)
            changed = torch.where(self.replace, self.offset.expand_as(current), current * self.factor + self.offset)
            if mask is not None:
                changed = torch.where(mask[..., None], changed, current)
            edited = edited.index_copy(-1, self.units, changed)
        return edited


class Intervention:
    """The live state of an :func:`intervene` block; ``positions`` may be replaced between forward passes."""

    def __init__(self, site_edits: list[_SiteEdits], positions=None):
        self.site_edits = site_edits
        self.positions = positions
        self.calls = 0  # forward passes through an edited site, for tests and sanity checks

    @property
    def positions(self):
        return self._positions

    @positions.setter
    def positions(self, mask):
        import torch

        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.bool)
            if mask.dim() != 2:
                raise InterventionError(f"positions must be a [batch, tokens] mask, got shape {tuple(mask.shape)}")
            if any(s.site.neuron_set.startswith("dec.") for s in self.site_edits):
                raise InterventionError(
                    "chosen positions refer to the input words; decoder neurons (dec.*) can only be changed at every "
                    "position"
                )
        self._positions = mask
        self._placed = {}

    def _mask_for(self, hidden):
        """The position mask shaped [batch, tokens] for this activation, or None for every position."""
        import torch

        mask = self._positions
        if mask is None:
            return None
        batch, tokens = hidden.shape[0], hidden.shape[1]
        key = (batch, tokens, hidden.device)
        if key in self._placed:
            return self._placed[key]
        if batch != mask.shape[0]:
            if batch % mask.shape[0]:
                raise InterventionError(f"positions given for a batch of {mask.shape[0]}, the model ran {batch}")
            mask = mask.repeat_interleave(batch // mask.shape[0], dim=0)  # beams of one input are adjacent
        if tokens < mask.shape[1]:
            raise InterventionError(
                f"positions given for {mask.shape[1]} tokens but the model ran on {tokens}; when generating with "
                "chosen positions, pass use_cache=False so each step sees the whole sequence"
            )
        if tokens > mask.shape[1]:
            mask = torch.cat([mask, mask.new_zeros(batch, tokens - mask.shape[1])], dim=1)
        mask = mask.to(hidden.device)
        self._placed[key] = mask
        return mask

    def _edit(self, site_edits: _SiteEdits, hidden):
        self.calls += 1
        return site_edits.apply(hidden, self._mask_for(hidden))


def _group_by_site(model, edits, directions, sites):
    if sites is None:
        from .loading import neuron_sites

        sites = neuron_sites(model)
    by_key = {site.key: site for site_list in sites.values() for site in site_list}
    edits_by_key: dict[tuple[str, int], list[NeuronEdit]] = {}
    seen = set()
    for edit in edits:
        key = (edit.neuron.set, edit.neuron.layer)
        if key not in by_key:
            known = ", ".join(f"{name} (layers 0-{len(lst) - 1})" for name, lst in sites.items())
            raise InterventionError(f"{edit.neuron}: the model has no such neuron set/layer; it has {known}")
        if edit.neuron in seen:
            raise InterventionError(f"{edit.neuron} is edited twice; give one edit per neuron")
        seen.add(edit.neuron)
        edits_by_key.setdefault(key, []).append(edit)
    directions_by_key = {}
    for direction in directions:
        key = (direction.neuron_set, direction.layer)
        if key not in by_key:
            raise InterventionError(f"direction edit at {key}: the model has no such neuron set/layer")
        directions_by_key[key] = direction
    keys = sorted(set(edits_by_key) | set(directions_by_key))
    return [_SiteEdits(by_key[k], edits_by_key.get(k, []), directions_by_key.get(k)) for k in keys]


@contextmanager
def intervene(model, edits: Iterable[NeuronEdit] = (), *, positions=None, directions: Iterable[DirectionEdit] = (),
              sites=None):
    """Apply ``edits`` (and ``directions``) during every forward pass of ``model`` inside the ``with`` block.

    ``sites``: the model's neuron sites if already computed (else :func:`neuron_sites` is called).
    ``positions``: see the module docstring; can be changed later through the yielded :class:`Intervention`.
    The hooks are removed on exit, also after an exception.
    """
    state = Intervention(_group_by_site(model, list(edits), list(directions), sites))
    state.positions = positions
    handles = []

    def make_hooks(site_edits: _SiteEdits):
        def pre_hook(module, args, kwargs):
            if args:
                return (state._edit(site_edits, args[0]),) + tuple(args[1:]), kwargs
            if "hidden_states" in kwargs:
                return args, {**kwargs, "hidden_states": state._edit(site_edits, kwargs["hidden_states"])}
            raise InterventionError(f"{site_edits.site.name}: the module got no input to edit")

        def post_hook(module, args, output):
            if isinstance(output, tuple):
                return (state._edit(site_edits, output[0]),) + output[1:]
            if isinstance(output, list):
                return [state._edit(site_edits, output[0])] + output[1:]
            return state._edit(site_edits, output)

        return pre_hook, post_hook

    try:
        for site_edits in state.site_edits:
            pre_hook, post_hook = make_hooks(site_edits)
            module = site_edits.site.module
            if site_edits.site.mode == "input":
                handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
            elif site_edits.site.mode == "output":
                handles.append(module.register_forward_hook(post_hook))
            else:
                raise InterventionError(f"unknown site mode {site_edits.site.mode!r}")
        yield state
    finally:
        for handle in handles:
            handle.remove()
