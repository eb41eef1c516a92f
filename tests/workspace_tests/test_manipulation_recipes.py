"""Manipulation recipes: saved from the page's form and through the API, restored by ``recipe=<id>``, deleted;
every write checked (members read, owners and editors write) and bad input refused with its message and nothing
stored."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from analysis.models import ManipulationRecipe
from tests.support.clients import api_client_for, client_for
from tests.support.roles import ROLES, WRITERS, expected_status

pytestmark = pytest.mark.django_db

QUERY = "model={model}&pools=L1:3,L2:5&corpus=3&op.L1:3=shift&v.L1:3=1.5&op.L2:5=clamp&v.L2:5=-0.25" \
        "&positions=label&label=VERB&mask=5"


def save_url(people, run):
    return reverse("analysis:run-manipulation-recipe-save", args=[people["project"].pk, run.pk])


def page_url(people, run):
    return reverse("analysis:run-manipulation", args=[people["project"].pk, run.pk])


def query_for(attached):
    return QUERY.format(model=attached["model"].pk)


def good_recipe(attached, **changes):
    return {"model": attached["model"].pk, "sentence": "the cat sat on the [MASK] .", "corpus_sentence": None,
            "edits": [{"neuron": "L1:3", "operation": "scale", "value": 2.0}], "positions": {"mode": "all"},
            **changes}


def make_recipe(people, run, attached, name="tense flip"):
    return ManipulationRecipe.objects.create(project=people["project"], run=run, created_by=people["owner"],
                                             name=name, recipe={**good_recipe(attached), "mask_words": []})


def test_save_from_the_page_and_restore_through_the_url(people, manip_run, attached):
    answer = client_for(people, "editor").post(save_url(people, manip_run),
                                               {"name": "  VERB push  ", "query": query_for(attached)})
    row = ManipulationRecipe.objects.get()
    assert answer.status_code == 302 and answer["Location"].endswith(f"?recipe={row.pk}")
    assert row.name == "VERB push" and row.created_by == people["editor"] and row.run == manip_run
    assert row.recipe["edits"] == [{"neuron": "L1:3", "operation": "shift", "value": 1.5},
                                   {"neuron": "L2:5", "operation": "clamp", "value": -0.25}]
    assert row.recipe["positions"] == {"mode": "label", "label": "VERB"} and row.recipe["corpus_sentence"] == 3
    assert row.recipe["mask_words"] == [5]

    html = client_for(people, "viewer").get(f"{page_url(people, manip_run)}?recipe={row.pk}").content.decode()
    assert "Showing the recipe “VERB push”" in html
    assert re.search(r'name="v\.L1:3"[^>]*value="1\.5"', html) and re.search(r'name="v\.L2:5"[^>]*value="-0\.25"', html)
    assert re.search(r'name="positions" value="label" checked', html)
    output = reverse("analysis:run-manipulation-output", args=[people["project"].pk, manip_run.pk])
    restored = client_for(people, "viewer").get(f"{output}?recipe={row.pk}")
    assert restored.status_code == 200 and "Predictions for word 5" in restored.content.decode()


@pytest.mark.parametrize("who", ROLES)
def test_who_may_save_from_the_page(people, manip_run, attached, who):
    answer = client_for(people, who).post(save_url(people, manip_run), {"name": "x", "query": query_for(attached)})
    expected = {"anonymous": 302, "stranger": 404, "viewer": 403}.get(who, 302)
    assert answer.status_code == expected
    assert ManipulationRecipe.objects.count() == (1 if who in WRITERS else 0)


@pytest.mark.parametrize("name,query,message", [
    ("", None, "Give the recipe a name."),
    ("x" * 121, None, "longer than 120 characters"),
    ("no neurons", "sentence=the+cat", "Choose 1 to 50 neurons"),
    ("bad neuron", "pools=bogus&sentence=the+cat", "is not a neuron"),
    ("empty", "pools=L1:3&sentence=", "Type a sentence"),
    ("no words", "pools=L1:3&sentence=a+b&positions=words", "Tick at least one word"),
])
def test_a_bad_save_from_the_page_stores_nothing_and_says_why(people, manip_run, attached, name, query, message):
    client = client_for(people, "owner")
    answer = client.post(save_url(people, manip_run), {"name": name, "query": query or query_for(attached)},
                         follow=True)
    assert ManipulationRecipe.objects.count() == 0
    assert message in answer.content.decode()


@pytest.mark.parametrize("who", ROLES)
def test_who_may_delete_from_the_page(people, manip_run, attached, who):
    row = make_recipe(people, manip_run, attached)
    url = reverse("analysis:run-manipulation-recipe-delete", args=[people["project"].pk, manip_run.pk, row.pk])
    answer = client_for(people, who).post(url)
    assert answer.status_code == {"anonymous": 302, "stranger": 404, "viewer": 403}.get(who, 302)
    assert ManipulationRecipe.objects.filter(pk=row.pk).exists() == (who not in WRITERS)


def test_a_recipe_of_another_project_is_not_found(people, manip_run, attached):
    from tests.factories import ProjectFactory

    other = ProjectFactory(owner=people["owner"], name="Elsewhere")
    row = ManipulationRecipe.objects.create(project=other, created_by=people["owner"], name="theirs",
                                            recipe=good_recipe(attached))
    assert client_for(people, "owner").get(f"{page_url(people, manip_run)}?recipe={row.pk}").status_code == 404


# ------------------------------------------------------------------------------------------------ API


def list_url(people):
    return reverse("project-recipe-list", args=[people["project"].pk])


def detail_url(people, row):
    return reverse("project-recipe-detail", args=[people["project"].pk, row.pk])


@pytest.mark.parametrize("who", ROLES)
def test_api_permission_matrix(people, manip_run, attached, who):
    row = make_recipe(people, manip_run, attached)
    members = {"owner", "editor", "viewer"}
    client = api_client_for(people, who)
    listed = client.get(list_url(people))
    assert listed.status_code == expected_status(who, members, 200)
    if listed.status_code == 200:
        assert [r["name"] for r in listed.json()["results"]] == ["tense flip"]
    assert client.get(detail_url(people, row)).status_code == expected_status(who, members, 200)
    created = client.post(list_url(people), {"name": "new", "run": manip_run.pk, "recipe": good_recipe(attached)},
                          format="json")
    assert created.status_code == expected_status(who, WRITERS, 201), created.content
    assert ManipulationRecipe.objects.count() == (2 if who in WRITERS else 1)
    assert client.delete(detail_url(people, row)).status_code == expected_status(who, WRITERS, 204)
    assert ManipulationRecipe.objects.filter(pk=row.pk).exists() == (who not in WRITERS)


def test_api_create_and_retrieve(people, manip_run, attached):
    client = api_client_for(people, "editor")
    body = {"name": "VERB at the verb", "run": manip_run.pk, "recipe": good_recipe(
        attached, corpus_sentence=3, sentence="", positions={"mode": "label", "label": "VERB"})}
    created = client.post(list_url(people), body, format="json").json()
    assert created["created_by"] == "eddie" and created["run"] == manip_run.pk
    assert created["recipe"]["sentence"] and created["recipe"]["positions"] == {"mode": "label", "label": "VERB"}
    row = ManipulationRecipe.objects.get(pk=created["id"])
    assert api_client_for(people, "viewer").get(detail_url(people, row)).json()["recipe"] == created["recipe"]


@pytest.mark.parametrize("change,field,message", [
    ({"name": "   "}, "name", "Give the recipe a name."),
    ({"name": "x" * 121}, "name", "longer than 120 characters"),
    ({"run": 999999}, "run", "Not a run of this project."),
    ({"recipe": "nope"}, "recipe", "A recipe is an object"),
    ({"recipe": {"model": 999999}}, "model", "Choose one of this project's models"),
    ({"recipe": {"sentence": " "}}, "sentence", "Type a sentence"),
    ({"recipe": {"sentence": "w " * 200}}, "sentence", "at most 128"),
    ({"recipe": {"edits": []}}, "edits", "Choose 1 to 50 neurons"),
    ({"recipe": {"edits": [{"neuron": "bogus", "operation": "clamp", "value": 1}]}}, "edits", "is not a neuron"),
    ({"recipe": {"edits": [{"neuron": "L1:3", "operation": "explode", "value": 1}]}}, "edits",
     "operation must be one of clamp, scale, shift"),
    ({"recipe": {"edits": [{"neuron": "L1:3", "operation": "clamp", "value": "big"}]}}, "edits", "finite number"),
    ({"recipe": {"edits": [{"neuron": "L1:3", "operation": "clamp", "value": 1},
                           {"neuron": "L1:3", "operation": "scale", "value": 1}]}}, "edits", "listed twice"),
    ({"recipe": {"positions": {"mode": "label", "label": "VERB"}}}, "positions", "need a corpus sentence"),
    ({"recipe": {"positions": {"mode": "words", "words": [99]}}}, "positions", "word positions from 0 to 6"),
    ({"recipe": {"positions": {"mode": "sideways"}}}, "positions", "positions.mode is 'all'"),
    ({"recipe": {"corpus_sentence": 99999, "sentence": ""}}, "corpus_sentence", "sentence number from 0 to 39"),
    ({"recipe": {"corpus_sentence": 3, "positions": {"mode": "label", "label": "TENSE"}}}, "positions",
     "Choose a label of this corpus"),
])
def test_api_bad_recipes_are_refused_with_a_message(people, manip_run, attached, change, field, message):
    body = {"name": "r", "run": manip_run.pk, "recipe": good_recipe(attached)}
    if isinstance(change.get("recipe"), dict):
        body["recipe"] = {**body["recipe"], **change["recipe"]}
    else:
        body.update(change)
    answer = api_client_for(people, "owner").post(list_url(people), body, format="json")
    assert answer.status_code == 400, answer.content
    fields = answer.json()["fields"]  # nested recipe errors come back as recipe.<part>
    key = field if field in ("name", "run") else "recipe" if field == "recipe" else f"recipe.{field}"
    assert message in " ".join(fields[key]), fields
    assert ManipulationRecipe.objects.count() == 0


def test_recipe_admin_is_scoped_to_the_staff_members_projects(people, manip_run, attached):
    from django.contrib.admin.sites import site
    from django.test import RequestFactory

    row = make_recipe(people, manip_run, attached)
    admin = site._registry[ManipulationRecipe]
    request = RequestFactory().get("/")
    request.user = people["stranger"]
    assert list(admin.get_queryset(request)) == []
    request.user = people["viewer"]
    assert list(admin.get_queryset(request)) == [row]
    assert admin.has_add_permission(request) is False
