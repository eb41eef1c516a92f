"""Manipulation on tiny models: the plain path is the plain model, a large clamp visibly changes the output."""

import json

import numpy as np
import pytest

from analysis.engine.interventions import clamp, scale
from analysis.engine.jobs import Cancelled, Job
from analysis.engine.manipulation import ManipulationError, manipulate, probe_predictions
from analysis.engine.neurons import NeuronId
from tests.support.tiny_models import PAD_ID, tiny_model_dir

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

SENTENCES = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran", "unbelievably", "fast"]]
LABELS = [["DET", "NOUN", "VERB", "ADP", "DET", "NOUN"], ["DET", "NOUN", "VERB", "ADV", "ADV"]]

_loaded = {}


def _load(arch):
    from analysis.engine.loading import load_model

    if arch not in _loaded:
        _loaded[arch] = load_model(tiny_model_dir(arch), device="cpu")
    return _loaded[arch]


def _big_clamp(neuron_set, layer, units, value=50.0):
    return clamp([NeuronId(neuron_set, layer, u) for u in range(units)], value)


def _plain_generate(lm, words, max_new_tokens):
    encoding = lm.tokenizer([words], is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        out = lm.model.generate(**encoding, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=PAD_ID)
    ids = out[0].tolist()
    return ids[encoding["input_ids"].shape[1]:] if lm.kind == "decoder" else ids


@pytest.mark.parametrize("arch,neuron_set", [("gpt2", "mlp"), ("llama", "hidden"), ("t5", "enc.hidden"),
                                             ("marian", "dec.mlp")])
def test_generation_and_translation_change_while_the_plain_path_is_the_plain_model(arch, neuron_set):
    lm = _load(arch)
    layer = 1
    units = lm.neuron_sites()[neuron_set][layer].units
    edits = _big_clamp(neuron_set, layer, units // 2)
    result = manipulate(lm, SENTENCES, edits, max_new_tokens=8)

    assert json.loads(json.dumps(result)) == result
    assert result["task"] == ("generation" if arch in ("gpt2", "llama") else "translation")
    assert result["edits"][0] == {"neuron": f"{NeuronId(neuron_set, layer, 0)}", "operation": "clamp", "value": 50.0}
    for words, entry in zip(SENTENCES, result["sentences"]):
        plain = lm.tokenizer.decode(_plain_generate(lm, words, 8), skip_special_tokens=True).strip()
        assert entry["original"]["text"] == plain
        assert not entry["identical"]
        assert any(entry["manipulated"]["changed"])
        assert len(entry["manipulated"]["changed"]) == len(entry["manipulated"]["tokens"])
    assert manipulate(lm, SENTENCES, edits, max_new_tokens=8) == result  # deterministic
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.model.modules())


def test_fill_mask_changes_and_reports_top_k():
    lm = _load("bert")
    edits = _big_clamp("hidden", 2, 16)
    sentences = [["the", "[MASK]", "sat", "on", "the", "mat"], SENTENCES[1]]
    result = manipulate(lm, sentences, edits, mask_words=[[], [2]], top_k=3)
    assert result["task"] == "fill-mask"
    first, second = result["sentences"]
    assert first["masks"][0]["word"] == 1 and second["masks"][0]["word"] == 2
    assert second["words"][2] == "[MASK]"

    encoding = lm.tokenizer([sentences[0]], is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        logits = lm.model(**encoding).logits[0]
    position = encoding["input_ids"][0].tolist().index(lm.tokenizer.mask_token_id)
    expected = logits[position].topk(3).indices.tolist()
    assert [p["id"] for p in first["masks"][0]["original"]] == expected
    assert len(first["masks"][0]["manipulated"]) == 3
    assert not first["identical"] and not second["identical"]
    assert manipulate(lm, sentences, edits, mask_words=[[], [2]], top_k=3) == result

    with pytest.raises(ManipulationError, match="no masked word"):
        manipulate(lm, [SENTENCES[0]], edits)


def test_only_chosen_positions_change_the_causal_lm():
    lm = _load("gpt2")
    edits = _big_clamp("hidden", 1, 16)
    by_label = manipulate(lm, SENTENCES, edits, labels=LABELS, chosen_labels={"VERB"}, max_new_tokens=6)
    everywhere = manipulate(lm, SENTENCES, edits, max_new_tokens=6)
    assert by_label["positions"] == {"mode": "labels", "labels": ["VERB"]}
    for a, b in zip(by_label["sentences"], everywhere["sentences"]):
        assert a["original"]["tokens"] == b["original"]["tokens"]
        assert a["manipulated"] != b["manipulated"]  # acting on one word differs from acting everywhere
    nothing = manipulate(lm, SENTENCES, edits, chosen_words=[[], []], max_new_tokens=6)
    assert all(entry["identical"] for entry in nothing["sentences"])


def test_chosen_positions_on_a_translation_model():
    lm = _load("t5")
    edits = _big_clamp("enc.hidden", 1, 16)
    nothing = manipulate(lm, SENTENCES, edits, chosen_words=[[], []], max_new_tokens=6)
    assert all(entry["identical"] for entry in nothing["sentences"])
    nouns = manipulate(lm, SENTENCES, edits, labels=LABELS, chosen_labels={"NOUN"}, max_new_tokens=6)
    assert not all(entry["identical"] for entry in nouns["sentences"])
    with pytest.raises(Exception, match="decoder neurons"):
        manipulate(lm, SENTENCES, _big_clamp("dec.hidden", 1, 4), chosen_words=[[1], [1]])


def test_probe_predictions_before_and_after():
    from analysis.engine.probe import Probe

    lm = _load("bert")
    neuron_ids = [NeuronId("hidden", 2, u) for u in range(32)]
    rng = np.random.default_rng(0)
    probe = Probe(
        weight=rng.normal(size=(3, 32)).astype(np.float32), bias=np.zeros(3, np.float32),
        mean=np.zeros(32, np.float32), std=np.ones(32, np.float32), label_names=["A", "B", "C"],
        neuron_ids=neuron_ids,
    )
    progress = []
    plain = probe_predictions(lm, probe, SENTENCES, scale(neuron_ids[:1], 1.0),
                              job=Job(on_progress=lambda *report: progress.append(report)))
    assert progress[-1] == (2, 2, "sentences")
    assert all(not any(s["changed"]) for s in plain["sentences"])  # scaling by 1 changes nothing
    assert [len(s["original"]) for s in plain["sentences"]] == [6, 5]

    flipped = probe_predictions(lm, probe, SENTENCES, scale(neuron_ids, -1.0), chosen_words=[[1], [3]])
    first, second = flipped["sentences"]
    assert first["changed"][1] and second["changed"][3]  # a negated representation gets another label
    assert first["changed"].count(True) == 1 and second["changed"].count(True) == 1


def test_manipulation_reports_sentences_and_stops_between_them():
    lm = _load("gpt2")
    edits = _big_clamp("mlp", 1, 4)
    progress = []
    manipulate(lm, SENTENCES, edits, max_new_tokens=2, job=Job(on_progress=lambda *report: progress.append(report)))
    assert progress == [(1, 2, "sentences"), (2, 2, "sentences")]

    progress.clear()
    stop_after_first = Job(on_progress=lambda *report: progress.append(report), should_stop=lambda: bool(progress))
    with pytest.raises(Cancelled):
        manipulate(lm, SENTENCES, edits, max_new_tokens=2, job=stop_after_first)
    assert progress == [(1, 2, "sentences")]
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.model.modules())
