"""The realtime endpoints in eager mode (the task runs in the test process): answers, the permission matrix and
bad input with its message. Real worker processes: test_real_worker.py."""

from __future__ import annotations

import pytest
from django.urls import reverse

from analysis.runs import realtime
from tests.support.clients import api_client_for

pytestmark = pytest.mark.django_db

SENTENCE = "the cat sat on the [MASK] ."


def url(project, kind):
    return reverse(f"project-realtime-{kind}", args=[project.pk])


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(realtime, "_cache", None)


@pytest.mark.parametrize("role,expected", [("owner", 200), ("editor", 200), ("viewer", 200), ("stranger", 404),
                                           ("anonymous", 401)])
def test_permission_matrix(people, attached, role, expected):
    body = {"model": attached["model"].pk, "sentence": SENTENCE}
    for kind, extra in (("activations", {}), ("manipulate", {"edits": [{"neuron": "L1:3"}]})):
        answer = api_client_for(people, role).post(url(people["project"], kind), {**body, **extra}, format="json")
        assert answer.status_code == expected, answer.content


def test_activations_top_k_and_pool(people, attached):
    client = api_client_for(people, "viewer")
    body = {"model": attached["model"].pk, "sentence": SENTENCE, "top_k": 3}
    data = client.post(url(people["project"], "activations"), body, format="json").json()
    assert data["words"] == SENTENCE.split() and all(len(t) == 3 for t in data["top"])
    for word, top in zip(data["values"], data["top"]):
        magnitudes = [abs(t["value"]) for t in top]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert max(abs(v) for v in word) == pytest.approx(magnitudes[0], abs=1e-5)
    pooled = client.post(url(people["project"], "activations"), {**body, "pool": ["L2:5", "mlp.L0:7"]},
                         format="json").json()
    assert pooled["neurons"] == ["L2:5", "mlp.L0:7"] and len(pooled["values"][0]) == 2
    assert {t["neuron"] for word in pooled["top"] for t in word} <= {"L2:5", "mlp.L0:7"}


def test_manipulation_changes_output(people, attached):
    body = {"model": attached["model"].pk, "sentence": "the [MASK] sat on the mat .",
            "edits": [{"neuron": f"L2:{u}", "operation": "scale", "value": 50} for u in range(32)]}
    data = api_client_for(people, "owner").post(url(people["project"], "manipulate"), body, format="json").json()
    assert data["task"] in ("fill-mask", "embedding")
    assert data["sentences"][0]["identical"] is False


@pytest.mark.parametrize("change,field,message", [
    ({"model": 999999}, "model", "not one of this project's models"),
    ({"sentence": "   "}, "sentence", "empty"),
    ({"sentence": "w " * 200}, "sentence", "at most 128"),
    ({"edits": [{"neuron": "L9:1"}]}, "edits", "layer 9 does not exist"),
    ({"edits": [{"neuron": "L1:32"}]}, "edits", "unit 32 does not exist"),
    ({"edits": [{"neuron": "mlp.L1:64"}]}, "edits", "unit 64 does not exist"),  # found by the worker
    ({"edits": [{"neuron": "bogus"}]}, "edits", "is not a neuron"),
    ({"edits": [{"neuron": "L1:1", "operation": "explode"}]}, "edits", "operation must be one of"),
    ({"edits": []}, "edits", "list of 1 to"),
    ({"mode": "sideways"}, "mode", "mode must be 'all'"),
    ({"mode": "words", "words": [99]}, "words", "word positions"),
])
def test_bad_manipulation_requests(people, attached, change, field, message):
    body = {"model": attached["model"].pk, "sentence": SENTENCE, "edits": [{"neuron": "L1:3"}], **change}
    answer = api_client_for(people, "editor").post(url(people["project"], "manipulate"), body, format="json")
    assert answer.status_code == 400
    data = answer.json()
    assert data["code"] == "invalid" and message in data["fields"][field][0], data


def test_bad_activation_requests(people, attached):
    client = api_client_for(people, "owner")
    for change, field in (({"neuron_set": "attention"}, "neuron_set"), ({"top_k": 0}, "top_k"),
                          ({"pool": ["L7:1"]}, "pool"), ({"aggregation": "max"}, "aggregation")):
        body = {"model": attached["model"].pk, "sentence": SENTENCE, **change}
        answer = client.post(url(people["project"], "activations"), body, format="json")
        assert answer.status_code == 400 and field in answer.json()["fields"], answer.content


def test_bad_input_queues_nothing(people, attached, settings):
    """Outside eager mode a bad request is refused before any worker check or message."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    body = {"model": attached["model"].pk, "sentence": ""}
    answer = api_client_for(people, "owner").post(url(people["project"], "activations"), body, format="json")
    assert answer.status_code == 400 and answer.json()["fields"]["sentence"] == ["Type a sentence: it is empty."]


def test_in_the_schema(client):
    schema = client.get(reverse("api-schema"), {"format": "json"}).json()
    for kind in ("activations", "manipulate"):
        operation = schema["paths"][f"/api/v1/projects/{{project_pk}}/realtime/{kind}/"]["post"]
        assert {"400", "503", "504"} <= set(operation["responses"])
        assert operation["requestBody"]["content"]["application/json"]["examples"]


def test_a_sentence_longer_than_the_model_takes_is_refused_not_cut(people, attached, settings):
    settings.NEUROX_REALTIME_MAX_WORDS = 1000
    words = " ".join(["unbelievably"] * 600)  # over the tiny model's 512 positions in subwords
    answer = api_client_for(people, "owner").post(url(people["project"], "activations"),
                                                  {"model": attached["model"].pk, "sentence": words}, format="json")
    assert answer.status_code == 400, answer.content
    assert "tokens long, more than the model's 512; shorten it" in answer.json()["fields"]["sentence"][0]
