"""The run request, the API schema and the rankings dialog follow the engine's declarations of each method's and
each ablation's options: a value outside a declared range is a 400 that names the range, an option or a
cross-model method declared in the engine is taken (and computed) with nothing else changed, and the schema and
the dialog show the declared ranges and defaults."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from analysis.runs import services
from analysis.engine import crossmodel, methods, model_ablation, probe_ablation
from analysis.engine.options import Option
from analysis.models import Run, RunState, StepKind
from tests.support.clients import api_client_for, client_for
from tests.support.runs import request_for

pytestmark = pytest.mark.django_db


def post_run(people, request):
    return api_client_for(people, "owner").post(f"/api/v1/projects/{people['project'].pk}/runs/", request,
                                                format="json")


def messages_of(response, field):
    assert response.status_code == 400, response.content
    return response.json()["fields"][field]


def outside(option: Option):
    """A value just outside the option's declared range."""
    return option.maximum + 1 if option.maximum is not None else option.minimum - 1


def ranged(options):
    return [o for o in options if o.type in (int, float) and (o.minimum is not None or o.maximum is not None)]


METHOD_OPTIONS = [(name, o) for name, m in methods.METHODS.items() for o in ranged(m.options)]
CROSSMODEL_OPTIONS = [(name, o) for name, m in crossmodel.METHODS.items() for o in ranged(m.options)]


@pytest.mark.parametrize("method, option", METHOD_OPTIONS, ids=lambda v: getattr(v, "name", v))
def test_a_method_option_outside_its_declared_range_is_a_400_naming_the_range(people, attached, method, option):
    response = post_run(people, request_for(attached, rankings=[{"method": method, "options": {
        option.name: outside(option)}}]))
    assert messages_of(response, "rankings") == [
        f"Ranking 1: options are an object of true or false values and numbers, e.g. {{\"control\": true, "
        f"\"l1\": 0.001}}: {option.name} is {option.fits}."]
    assert option.range in option.fits and Run.objects.count() == 0


@pytest.mark.parametrize("method, option", CROSSMODEL_OPTIONS, ids=lambda v: getattr(v, "name", v))
def test_a_cross_model_option_outside_its_declared_range_is_a_400_naming_the_range(people, two_berts, method,
                                                                                   option):
    request = request_for(two_berts, models=[two_berts["model"].pk, two_berts["second"].pk],
                          crossmodel=[{"method": method, option.name: outside(option)}])
    assert messages_of(post_run(people, request), "crossmodel") == [
        f"Cross-model ranking 1: {option.name} is a number {option.range}."]


def test_a_bootstrap_outside_its_declaration_names_it(people, attached):
    response = post_run(people, request_for(attached, rankings=[{"method": "anova", "bootstrap": 1}]))
    assert messages_of(response, "rankings") == [
        f"Ranking 1: bootstrap is {methods.BOOTSTRAP.help}: {methods.BOOTSTRAP.range}, not 1."]


@pytest.mark.parametrize("field, declared", [("probe_ablation", probe_ablation.OPTIONS),
                                             ("model_ablation", model_ablation.OPTIONS)])
def test_each_bad_ablation_option_gets_its_declared_message(people, attached, field, declared):
    test_set = None
    if field == "model_ablation":
        from django.core.files.uploadedfile import SimpleUploadedFile

        from projects.services.attachments import attach_upload
        from projects.services.library import create_test_set_upload

        test_set = create_test_set_upload(people["owner"], file=SimpleUploadedFile("t.txt", b"a cat sat .\n"),
                                          name="one sentence")
        attach_upload(people["owner"], people["project"], test_set)
    bad = {"percents": [0, 50], "random_seeds": 0, "modes": ["melt"]}
    value = {**bad, **({"test_set": test_set.pk} if test_set else {})}
    assert messages_of(post_run(people, request_for(attached, **{field: value})), field) == [
        option.field_problem() for option in declared]
    assert all(option.field_problem().startswith(f"{option.name}: ") for option in declared)


# ------------------------------------------------------------------------------------ declared in the engine only


@pytest.fixture
def anova_with_alpha(monkeypatch):
    """ANOVA declares one more option (its rank function takes and records it)."""
    alpha = Option("alpha", float, 0.5, "a test option", minimum=0, maximum=0.9, label="α (test)")
    original = methods.METHODS["anova"]

    def rank(data, rows, job, options):
        ranking = original.rank(data, rows, job, {k: v for k, v in options.items() if k != "alpha"})
        ranking.params["alpha"] = options.get("alpha")
        return ranking

    monkeypatch.setitem(methods.METHODS, "anova", dataclasses.replace(original, rank=rank, options=(alpha,)))
    return alpha


def test_an_option_declared_on_a_method_is_checked_and_reaches_it(people, attached, anova_with_alpha,
                                                                 django_capture_on_commit_callbacks):
    refused = post_run(people, request_for(attached, rankings=[{"method": "anova", "options": {"alpha": 1}}]))
    assert "alpha is a number from 0 to 0.9" in messages_of(refused, "rankings")[0]
    with django_capture_on_commit_callbacks(execute=True):
        created = post_run(people, request_for(attached, statistics=False, rankings=[
            {"method": "anova", "bootstrap": 0, "options": {"alpha": 0.25}}]))
    assert created.status_code == 201, created.content
    run = Run.objects.get()
    assert run.state == RunState.SUCCEEDED, run.error
    step = run.steps.get(kind=StepKind.RANKING)
    assert step.params["options"] == {"alpha": 0.25}
    ranking = api_client_for(people, "owner").get(f"/api/v1/runs/{run.pk}/results/").json()
    assert next(r for r in ranking if r["kind"] == "ranking")["data"]["params"]["alpha"] == 0.25


def test_an_option_declared_on_a_method_is_in_the_dialog_and_its_list_item(people, attached, anova_with_alpha):
    client = client_for(people, "editor")
    html = client.get(f"/projects/{people['project'].pk}/runs/new/").content.decode()
    block = re.search(r'<div class="field" data-methods="anova">(.*?)</div>', html, re.S)
    assert block and 'name="alpha"' in block[1] and 'min="0"' in block[1] and 'max="0.9"' in block[1]
    assert 'placeholder="0.5"' in block[1] and "A test option (from 0 to 0.9; empty: 0.5)." in block[1]
    item = client.post(f"/projects/{people['project'].pk}/runs/new/ranking/",
                       {"method": "anova", "alpha": "0.25"}).content.decode()
    value = json.loads(re.search(r'value="([^"]*)"', item)[1].replace("&quot;", '"'))
    assert value == {"method": "anova", "bootstrap": 0, "options": {"alpha": 0.25}}
    assert "α 0.25" in item


def test_a_cross_model_method_registered_in_the_engine_is_requested_and_computed(
        people, two_berts, monkeypatch, django_capture_on_commit_callbacks):
    calls = []

    def rank(models, model_names=None, job=None, scale=1.0):
        calls.append(scale)
        return crossmodel.METHODS["maxcorr"].rank(models, model_names, job)

    scale = Option("scale", float, 1.0, "a test option", minimum=1)
    monkeypatch.setitem(crossmodel.METHODS, "first_copy", crossmodel.CrossModelMethod(
        "first_copy", rank, crossmodel.UNIT, "maxcorr again", options=(scale,), score="as maxcorr"))
    request = request_for(two_berts, models=[two_berts["model"].pk, two_berts["second"].pk], rankings=[],
                          statistics=False, crossmodel=[{"method": "first_copy", "scale": 0.5}])
    assert messages_of(post_run(people, request), "crossmodel") == [
        "Cross-model ranking 1: scale is a number at least 1."]
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"],
                                  {**request, "crossmodel": [{"method": "first_copy", "scale": 2}]})
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    assert calls == [2.0] and run.steps.get(kind=StepKind.CROSSMODEL).params["options"] == {"scale": 2.0}


# ------------------------------------------------------------------------------------------------ the schema


@pytest.fixture(scope="module")
def run_request_schema():
    from django.test import Client

    schema = Client().get("/api/schema/?format=json").json()
    return schema["components"]["schemas"]["RunRequestRequest"]["properties"]


def test_the_schema_shows_each_methods_declared_options(run_request_schema):
    item = run_request_schema["rankings"]["items"]["oneOf"][1]["properties"]
    assert item["method"]["enum"] == list(methods.METHODS)
    options = item["options"]["properties"]
    assert set(options) == {o.name for m in methods.METHODS.values() for o in m.options}
    assert (options["l1"]["minimum"], options["l1"]["maximum"], options["l1"]["default"]) == (
        methods.L1.minimum, methods.L1.maximum, methods.L1.default)
    assert item["options"]["additionalProperties"] is False
    assert item["bootstrap"]["minimum"] == 0 and methods.BOOTSTRAP.range in item["bootstrap"]["description"]
    assert item["consensus"]["enum"] == list(methods.CONSENSUS.choices)
    for method in methods.METHODS.values():
        assert method.score in item["method"]["description"]


def test_the_schema_shows_the_cross_model_and_ablation_declarations(run_request_schema):
    item = run_request_schema["crossmodel"]["items"]["oneOf"][1]
    assert item["properties"]["method"]["enum"] == list(crossmodel.METHODS)
    kept = item["properties"]["variance_kept"]
    assert (kept["minimum"], kept["exclusiveMinimum"], kept["maximum"], kept["default"]) == (0, True, 1, 0.99)
    probe = run_request_schema["probe_ablation"]["oneOf"][1]["properties"]
    assert probe["percents"]["default"] == list(probe_ablation.DEFAULT_PERCENTS)
    assert probe["modes"]["items"]["enum"] == list(probe_ablation.MODES)
    curve = run_request_schema["model_ablation"]["oneOf"][1]
    assert curve["required"] == ["test_set"] and curve["properties"]["modes"]["items"]["enum"] == list(
        model_ablation.CURVE_MODES)
    assert curve["properties"]["random_seeds"]["minimum"] == 1
