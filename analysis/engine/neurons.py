"""Neuron identities: ``(set, layer, unit)``, never a bare flat index in anything a user sees.

Neuron-set names: ``hidden`` (hidden state after each layer; embeddings output = layer 0) and ``mlp`` (the
activation after the feed-forward non-linearity, i.e. the input of the block's output projection). For
encoder-decoder models the sets are prefixed: ``enc.hidden``, ``enc.mlp``, ``dec.hidden``, ``dec.mlp``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HIDDEN = "hidden"
MLP = "mlp"

_LABEL_RE = re.compile(r"^(?:(?P<prefix>[a-z.]+)\.)?L(?P<layer>\d+):(?P<unit>\d+)$")


@dataclass(frozen=True, order=True)
class NeuronId:
    set: str
    layer: int
    unit: int

    @property
    def label(self) -> str:
        """Display form: ``L3:117`` for the hidden set, ``mlp.L3:117``, ``enc.L3:117``, ``dec.mlp.L3:117``."""
        prefix = self.set[: -len(HIDDEN)].rstrip(".") if self.set.endswith(HIDDEN) else self.set
        return f"{prefix + '.' if prefix else ''}L{self.layer}:{self.unit}"

    def __str__(self) -> str:
        return self.label

    @classmethod
    def parse(cls, text: str) -> "NeuronId":
        match = _LABEL_RE.match(text.strip())
        if not match:
            raise ValueError(f"not a neuron id: {text!r} (expected e.g. 'L3:117' or 'mlp.L3:117')")
        prefix = match["prefix"] or ""
        if prefix in ("", "enc", "dec"):
            neuron_set = f"{prefix}.{HIDDEN}" if prefix else HIDDEN
        else:
            neuron_set = prefix
        return cls(neuron_set, int(match["layer"]), int(match["unit"]))


def layer_neurons(neuron_set: str, layer: int, units: int) -> list[NeuronId]:
    return [NeuronId(neuron_set, layer, unit) for unit in range(units)]


def resolve_neuron_sets(available, requested) -> list[str]:
    """Requested set names as ``available`` (a model's sites or a store's sets) names them: ``hidden``/``mlp``
    expand to their ``enc.``/``dec.`` sets for encoder-decoder models. In ``available``'s order."""
    resolved = []
    for name in requested:
        if name in available:
            resolved.append(name)
            continue
        expanded = [f"{side}.{name}" for side in ("enc", "dec") if f"{side}.{name}" in available]
        if not expanded:
            raise ValueError(f"unknown neuron set {name!r}; this model has {', '.join(available)}")
        resolved.extend(expanded)
    order = list(available)
    return sorted(set(resolved), key=order.index)
