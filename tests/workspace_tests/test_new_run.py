"""The new-analysis form: who may open it and its partials, the request it builds (rankings added through the
dialog, λ1 / λ2 reaching the probe and the result key), the service's messages next to their fields with
nothing stored, and the estimate (sizes for a tiny model, "reused" after a finished run)."""

from __future__ import annotations

import json
import re

import pytest

from analysis.runs import estimates, services
from analysis.models import LogLine, Result, ResultKind, Run, Step, StepKind
from analysis.workspace import ranking_of
from tests.support.clients import client_for
from tests.support.roles import ROLES, WRITERS, page_status
from tests.support.runs import request_for

pytestmark = pytest.mark.django_db


def url(people, tail=""):
    return f"/projects/{people['project'].pk}/runs/new/{tail}"


def form_data(attached, *rankings, **changes):
    """What the browser posts: the form's inputs, each ranking the dialog added as one JSON input."""
    data = {"models": [attached["model"].pk], "corpus": attached["corpus"].pk, "neuron_sets": ["hidden"],
            "layers": "", "statistics": "on", "seed": "0", "rankings": [json.dumps(r) for r in rankings]}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def field_errors(html: str, field: str) -> str:
    """The text of the form field block ``field`` (its inputs and the messages right under them)."""
    match = re.search(rf'<div class="field[^"]*" id="field-{field}">(.*?)</div>\s*(?:<div class="field|<h2|'
                      rf'<button type="submit")', html, re.S)
    assert match, f"no field block {field}"
    return match[1]


# ------------------------------------------------------------------------------------------------ permissions


@pytest.mark.parametrize("who", ROLES)
def test_the_form_is_for_editors_and_owners(people, attached, who):
    response = client_for(people, who).get(url(people))
    assert response.status_code == page_status(who, WRITERS)
    if who == "anonymous":
        assert response["Location"].startswith("/accounts/login/")
    if who == "viewer":
        assert "Viewers cannot start runs; ask an owner of the project for the editor role." in \
            response.content.decode()
    if response.status_code == 200:
        html = response.content.decode()
        assert 'id="ranking-dialog"' in html and "<dialog" in html and attached["model"].name in html


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("tail", ["", "estimate/", "ranking/"])
def test_posting_the_form_and_its_partials_needs_the_editor_role(people, attached, who, tail,
                                                                 django_capture_on_commit_callbacks):
    data = form_data(attached, {"method": "probeless", "bootstrap": 0}) if tail != "ranking/" else {"method": "anova"}
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(people, who).post(url(people, tail), data)
    expected = page_status(who, WRITERS)
    if tail == "" and who in WRITERS:
        expected = 302
    assert response.status_code == expected
    assert Run.objects.count() == (1 if tail == "" and who in WRITERS else 0)


def test_the_run_list_links_to_the_form_for_writers_only(people, attached):
    for who in ("owner", "editor", "viewer"):
        html = client_for(people, who).get(f"/projects/{people['project'].pk}/runs/").content.decode()
        assert (f'href="{url(people)}"' in html) == (who in WRITERS)


# ------------------------------------------------------------------------------------------------ the request


def test_the_form_starts_the_run_the_api_would(people, attached, django_capture_on_commit_callbacks):
    lca = {"method": "lca", "bootstrap": 0, "options": {"l1": 0.01, "l2": 0.001, "control": True}}
    anova = {"method": "anova", "bootstrap": 4}
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(people, "editor").post(url(people), form_data(
            attached, lca, anova, layers="0, 1-2", neuron_sets=["hidden", "mlp"], probe_ablation="on"))
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/projects/{run.project_id}/runs/{run.pk}/"
    expected = services.validate_request(people["project"], request_for(
        attached, rankings=[lca, anova], layers=[0, 1, 2], neuron_sets=["hidden", "mlp"], probe_ablation=True,
        crossmodel=[], model_ablation=False, seed=0))
    assert run.request == expected
    ranking = run.steps.get(kind=StepKind.RANKING, params__method="lca")
    assert ranking.params["options"] == {"control": True, "l1": 0.01, "l2": 0.001}
    plain = services.plan_run(people["project"], {**expected, "rankings": [{"method": "lca", "bootstrap": 0}]})
    assert ranking.result_key not in {step.key for step in plain.steps}  # λ1 / λ2 are part of the result key


def test_lambda_options_reach_the_probe(people, attached, django_capture_on_commit_callbacks):
    request = request_for(attached, statistics=False,
                          rankings=[{"method": "lca", "bootstrap": 0, "options": {"l1": 0.01, "l2": 0.003}}])
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request)
    run.refresh_from_db()
    assert run.state == "succeeded", list(run.log_lines.values_list("text", flat=True))
    ranking = ranking_of(run.steps.get(kind=StepKind.RANKING))
    assert ranking.params["l1"] == 0.01 and ranking.params["l2"] == 0.003


@pytest.mark.parametrize("options, message", [
    ({"l1": 2}, "l1 is a number from 0 to 1"),
    ({"l2": -0.1}, "l2 is a number from 0 to 1"),
    ({"l2": "auto"}, "l2 is a number from 0 to 1"),
    ({"control": "yes"}, "control is true or false"),
])
def test_lambda_options_out_of_range_are_refused(people, attached, options, message):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        services.create_run(people["owner"], people["project"], request_for(
            attached, rankings=[{"method": "lca", "options": options}]))
    assert any(message in text for text in caught.value.message_dict["rankings"])
    assert Run.objects.count() == 0


@pytest.mark.parametrize("changes, rankings, field, message", [
    ({"models": None}, [{"method": "probeless"}], "models", "Choose at least one model of this project"),
    ({"corpus": ""}, [{"method": "probeless"}], "corpus", "Choose one of this project&#x27;s corpora"),
    ({"layers": "7"}, [{"method": "probeless"}], "layers", "Layer 7 does not exist in tiny bert"),
    ({"layers": "one, two"}, [{"method": "probeless"}], "layers", "Write layer numbers and ranges"),
    ({"layers": "4-2"}, [{"method": "probeless"}], "layers", "The range 4-2 runs backwards"),
    ({}, [{"method": "lca", "options": {"l1": 5}}], "rankings", "Ranking 1: options are an object"),
    ({}, [{"method": "maxcorr"}], "rankings", "Cross-model correlation compares two or more models"),
    ({"statistics": None}, [], "rankings", "Ask for at least one ranking"),
    ({"neuron_sets": None}, [{"method": "probeless"}], "neuron_sets", "Choose neuron sets among hidden, mlp"),
])
def test_a_bad_form_shows_each_message_next_to_its_field_and_stores_nothing(people, attached, changes, rankings,
                                                                           field, message):
    response = client_for(people, "owner").post(url(people), form_data(attached, *rankings, **changes))
    assert response.status_code == 400
    assert message in field_errors(response.content.decode(), field)
    assert Run.objects.count() == Step.objects.count() == LogLine.objects.count() == 0


def test_a_bad_form_keeps_the_rankings_it_had(people, attached):
    lca = {"method": "lca", "bootstrap": 0, "options": {"l1": 0.01}}
    html = client_for(people, "owner").post(url(people), form_data(attached, lca, layers="9")).content.decode()
    assert 'name="rankings"' in html and "λ1 0.01" in html


def test_a_ranking_the_service_refuses_is_redrawn_with_its_message(people, attached):
    odd = {"method": "lca", "bootstrap": "many", "options": {"l1": "high", "control": "yes"}}
    response = client_for(people, "owner").post(url(people), form_data(attached, odd))
    html = response.content.decode()
    assert response.status_code == 400 and "Ranking 1: bootstrap is the number of resamples" in html
    assert "λ1 &#x27;high&#x27;" in html and Run.objects.count() == 0
    response = client_for(people, "owner").post(url(people), form_data(attached, rankings=["not json"]))
    assert "A ranking could not be read; remove it and add it again." in field_errors(response.content.decode(),
                                                                                      "rankings")


# ------------------------------------------------------------------------------------------------ the dialog


def test_the_dialog_answers_the_list_item_of_a_ranking(people, attached):
    response = client_for(people, "editor").post(url(people, "ranking/"), {
        "method": "lca", "l1": "0.01", "l2": "0.001", "control": "on", "confidence": "on", "bootstrap": "3"})
    html = response.content.decode()
    value = json.loads(re.search(r'name="rankings" value="([^"]*)"', html)[1].replace("&quot;", '"'))
    assert value == {"method": "lca", "bootstrap": 3, "options": {"l1": 0.01, "l2": 0.001, "control": True}}
    assert "λ1 0.01 · λ2 0.001 · control task · confidence: 3 resamples" in html
    assert 'aria-label="Remove ranking: ' in html


def test_the_dialog_keeps_only_the_options_a_scheme_takes(people, attached):
    client = client_for(people, "editor")
    html = client.post(url(people, "ranking/"), {"method": "anova", "l1": "0.5", "control": "on"}).content.decode()
    value = json.loads(re.search(r'value="([^"]*)"', html)[1].replace("&quot;", '"'))
    assert value == {"method": "anova", "bootstrap": 0, "options": {}}
    html = client.post(url(people, "ranking/"), {"method": "svcca", "variance_kept": "0.9"}).content.decode()
    assert json.loads(re.search(r'value="([^"]*)"', html)[1].replace("&quot;", '"')) == {
        "method": "svcca", "variance_kept": 0.9}
    html = client.post(url(people, "ranking/"), {"method": "probeless", "confidence": "on"}).content.decode()
    assert '&quot;bootstrap&quot;: 20' in html  # the method's default resamples


def test_a_bad_dialog_entry_is_answered_inside_the_dialog(people, attached):
    response = client_for(people, "editor").post(url(people, "ranking/"), {"method": "lca", "l1": "lots"})
    assert response["HX-Retarget"] == "#ranking-dialog-errors"
    assert "λ1 (sparsity): Enter a number." in response.content.decode()
    response = client_for(people, "editor").post(url(people, "ranking/"), {"method": "magic"})
    assert "Scheme: Select a valid choice." in response.content.decode()


# ------------------------------------------------------------------------------------------------ the estimate


def test_the_estimate_of_a_tiny_model_matches_the_store_it_writes(people, attached, finished_run):
    """The finished run wrote the store the estimate describes: its arrays and words take what it said."""
    from analysis.models import results_root

    store = results_root() / Result.objects.get(kind=ResultKind.STORE).path
    written = sum(p.stat().st_size for p in store.iterdir() if p.suffix == ".npy" or p.name == "words.json")
    model, corpus = attached["model"], attached["corpus"]
    shape = estimates.store_shape(model, ["hidden"])
    assert shape == {"hidden": {"layers": model.n_layers + 1, "units": model.hidden_size}}
    assert shape["hidden"]["layers"] == len(list(store.glob("hidden.L*.npy")))
    predicted = estimates.store_bytes(corpus.n_sentences, corpus.n_words, shape)
    assert abs(predicted - written) <= 0.05 * written, (predicted, written)


def test_the_mlp_width_comes_from_the_stored_config(people, attached, tiny_bert):
    config = json.loads((tiny_bert / "config.json").read_text())
    model = attached["model"]
    assert estimates.store_shape(model, ["hidden", "mlp"]) == {
        "hidden": {"layers": config["num_hidden_layers"] + 1, "units": config["hidden_size"]},
        "mlp": {"layers": config["num_hidden_layers"], "units": config["intermediate_size"]}}
    assert estimates._model_config(model) == config  # read from the upload's stored files, not assumed


def test_the_estimate_shows_numbers_and_then_reused_parts(people, attached, django_capture_on_commit_callbacks):
    client = client_for(people, "editor")
    data = form_data(attached, {"method": "probeless", "bootstrap": 0})
    html = client.post(url(people, "estimate/"), data).content.decode()
    assert html.count('data-state="new"') == 3 and "reused" not in re.sub(r"already computed", "", html)
    first = estimates.estimate(people["project"], NewRunRequest(attached))
    assert first.disk_bytes > 0 and first.memory_bytes > 0 and first.seconds["cpu"] > 0 and first.reused == 0
    assert re.search(r'id="estimate-disk">[\d.]+\xa0KB', html)
    with django_capture_on_commit_callbacks(execute=True):
        services.create_run(people["owner"], people["project"], NewRunRequest(attached))
    html = client.post(url(people, "estimate/"), data).content.decode()
    assert "Extract activations: tiny bert × toy.conllu: <strong>reused</strong>" in html
    assert "Ranking probeless: tiny bert: <strong>reused</strong>" in html
    assert 'id="estimate-disk">0\xa0bytes (every activation store exists)' in html
    again = estimates.estimate(people["project"], {**NewRunRequest(attached), "seed": 1})
    assert [part.state for part in again.parts] == ["reused", "reused", "new"]  # a new seed: a new ranking


def NewRunRequest(attached):  # noqa: N802 — the request the form above builds
    return request_for(attached, rankings=[{"method": "probeless", "bootstrap": 0}])


def test_the_estimate_explains_a_form_that_cannot_run(people, attached):
    response = client_for(people, "editor").post(url(people, "estimate/"), form_data(attached, models=None))
    html = response.content.decode()
    assert "The estimate appears once the form describes a run that can start" in html
    assert "Choose at least one model of this project" in html
    assert Run.objects.count() == 0
