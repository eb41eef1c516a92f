"""Forward-hook interventions change exactly the chosen units, where asked, and leave no trace afterwards."""

import pytest

from analysis.engine.interventions import (
    DirectionEdit,
    InterventionError,
    NeuronEdit,
    clamp,
    intervene,
    mean_ablate,
    positions_for_labels,
    positions_for_words,
    scale,
    shift,
    zero,
)
from analysis.engine.neurons import NeuronId
from tests.support.tiny_models import ARCHITECTURES, SEQ2SEQ, tiny_model_dir

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

SENTENCES = [["The", "cat", "sat", "unbelievably", "quietly"], ["Dogs", "run", "."]]
LABELS = [["DET", "NOUN", "VERB", "ADV", "ADV"], ["NOUN", "VERB", "PUNCT"]]

_loaded = {}


def _load(arch):
    from analysis.engine.loading import load_model

    if arch not in _loaded:
        _loaded[arch] = load_model(tiny_model_dir(arch), device="cpu")
    return _loaded[arch]


def _batch(lm):
    return lm.tokenizer(SENTENCES, is_split_into_words=True, padding=True, return_tensors="pt")


def _forward(lm, batch, sites):
    """(captured activations of every site, logits) for one forward pass."""
    from analysis.engine.loading import capture

    inputs = dict(batch)
    if lm.kind == "encoder-decoder":
        inputs["decoder_input_ids"] = torch.tensor([[101, 1996, 4937, 2938], [101, 2031, 2031, 1012]])
    with torch.inference_mode(), capture(lm.model, sites) as captured:
        logits = lm.model(**inputs).logits
        values = {key: value.clone() for key, value in captured.items()}
    return values, logits


def _all_sites(lm):
    return [site for sites in lm.neuron_sites().values() for site in sites]


def _sets(arch):
    return ("enc.hidden", "enc.mlp", "dec.hidden", "dec.mlp") if arch in SEQ2SEQ else ("hidden", "mlp")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_operation_changes_exactly_its_units_and_hooks_are_removed(arch):
    lm = _load(arch)
    batch = _batch(lm)
    sites = _all_sites(lm)
    before, logits_before = _forward(lm, batch, sites)

    for neuron_set in _sets(arch):
        layer = 1
        key = (neuron_set, layer)
        n = lambda unit: NeuronId(neuron_set, layer, unit)  # noqa: E731
        edits = (
            zero([n(0)]) + mean_ablate([n(1)], {n(1): 0.25}) + clamp([n(2), n(3)], [7.0, -3.0])
            + scale([n(4)], 2.5) + shift([n(5)], 1.5)
        )
        with intervene(lm.model, edits, sites=lm.neuron_sites()) as state:
            during, logits_during = _forward(lm, batch, sites)
        assert state.calls >= 1
        original, edited = before[key], during[key]
        assert torch.all(edited[..., 0] == 0)
        assert torch.all(edited[..., 1] == 0.25)
        assert torch.all(edited[..., 2] == 7.0) and torch.all(edited[..., 3] == -3.0)
        torch.testing.assert_close(edited[..., 4], original[..., 4] * 2.5)
        torch.testing.assert_close(edited[..., 5], original[..., 5] + 1.5)
        assert torch.equal(edited[..., 6:], original[..., 6:]), f"{neuron_set}: untouched units changed"
        assert not torch.equal(logits_during, logits_before), f"{neuron_set}: the edit did not reach the output"

    after, logits_after = _forward(lm, batch, sites)
    assert torch.equal(logits_after, logits_before)
    for key in before:
        assert torch.equal(after[key], before[key])


def test_hooks_are_removed_after_an_exception():
    lm = _load("gpt2")
    batch = _batch(lm)
    _, logits_before = _forward(lm, batch, [])
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(lm.model, clamp([NeuronId("hidden", 1, 0)], 100.0)):
            raise RuntimeError("boom")
    _, logits_after = _forward(lm, batch, [])
    assert torch.equal(logits_after, logits_before)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.model.modules())


@pytest.mark.parametrize("arch", ["bert", "llama", "t5"])
def test_positions_of_chosen_labels_only(arch):
    lm = _load(arch)
    batch = _batch(lm)
    neuron_set = "enc.hidden" if arch in SEQ2SEQ else "hidden"
    sites = [s for s in lm.neuron_sites()[neuron_set] if s.layer == 0]
    before, _ = _forward(lm, batch, sites)
    mask = positions_for_labels(batch, LABELS, {"VERB"})
    assert mask.sum() == 2  # "sat" and "run" are one token each
    with intervene(lm.model, clamp([NeuronId(neuron_set, 0, 3)], 9.0), positions=mask):
        during, _ = _forward(lm, batch, sites)
    original, edited = before[(neuron_set, 0)], during[(neuron_set, 0)]
    assert torch.all(edited[..., 3][mask] == 9.0)
    assert torch.equal(edited[..., 3][~mask], original[..., 3][~mask])
    assert torch.equal(edited[..., :3], original[..., :3]) and torch.equal(edited[..., 4:], original[..., 4:])


def test_positions_for_words_covers_every_subword():
    lm = _load("bert")
    batch = _batch(lm)
    mask = positions_for_words(batch, [[3], []])
    chosen_tokens = [t for t, w in enumerate(batch.word_ids(0)) if w == 3]
    assert len(chosen_tokens) > 1  # "unbelievably" is split into subwords
    assert mask[0].nonzero().flatten().tolist() == chosen_tokens
    assert not mask[1].any()


def test_positions_can_change_between_passes_and_are_checked():
    lm = _load("gpt2")
    batch = _batch(lm)
    site = [s for s in lm.neuron_sites()["mlp"] if s.layer == 0]
    first = torch.zeros(batch["input_ids"].shape, dtype=torch.bool)
    first[0, 1] = True
    second = torch.zeros_like(first)
    second[1, 2] = True
    with intervene(lm.model, zero([NeuronId("mlp", 0, 10)])) as state:
        state.positions = first
        a, _ = _forward(lm, batch, site)
        state.positions = second
        b, _ = _forward(lm, batch, site)
        state.positions = first[:, :2]  # longer runs: tokens past the mask are not chosen
        c, _ = _forward(lm, batch, site)
        state.positions = torch.ones(2, batch["input_ids"].shape[1] + 1, dtype=torch.bool)
        with pytest.raises(InterventionError, match="use_cache=False"):
            _forward(lm, batch, site)
    key = ("mlp", 0)
    assert a[key][0, 1, 10] == 0 and a[key][1, 2, 10] != 0
    assert b[key][1, 2, 10] == 0 and b[key][0, 1, 10] != 0
    assert torch.equal(c[key], a[key])


def test_direction_edit_erases_one_direction():
    lm = _load("gpt2")
    batch = _batch(lm)
    sites = [s for s in lm.neuron_sites()["hidden"] if s.layer == 1]
    before, _ = _forward(lm, batch, sites)
    generator = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(32, 32, generator=generator))
    basis = basis.T.contiguous()  # rows are orthonormal directions
    keep = torch.ones(32)
    keep[0] = 0
    with intervene(lm.model, directions=[DirectionEdit("hidden", 1, basis, keep)]):
        during, _ = _forward(lm, batch, sites)
    h = before[("hidden", 1)]
    expected = h - (h @ basis[0])[..., None] * basis[0]
    torch.testing.assert_close(during[("hidden", 1)], expected, atol=1e-5, rtol=1e-5)


def test_bad_requests_are_refused_clearly():
    lm = _load("gpt2")
    with pytest.raises(InterventionError, match="no such neuron set/layer"):
        with intervene(lm.model, zero([NeuronId("hidden", 9, 0)])):
            pass
    with pytest.raises(InterventionError, match="out of range"):
        with intervene(lm.model, zero([NeuronId("mlp", 0, 64)])):
            pass
    with pytest.raises(InterventionError, match="edited twice"):
        with intervene(lm.model, zero([NeuronId("mlp", 0, 1)]) + clamp([NeuronId("mlp", 0, 1)], 1.0)):
            pass
    with pytest.raises(InterventionError, match="unknown operation"):
        NeuronEdit(NeuronId("mlp", 0, 1), "invert")
    with pytest.raises(InterventionError, match="finite"):
        clamp([NeuronId("mlp", 0, 1)], float("nan"))
    with pytest.raises(InterventionError, match="2 neurons but 1"):
        clamp([NeuronId("mlp", 0, 1), NeuronId("mlp", 0, 2)], [1.0])
    t5 = _load("t5")
    with pytest.raises(InterventionError, match="decoder neurons"):
        with intervene(t5.model, zero([NeuronId("dec.mlp", 0, 1)]), positions=torch.ones(1, 3, dtype=torch.bool)):
            pass
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.model.modules())
