"""The permission matrix over every URL of a run's workspace: each pattern of ``analysis/urls.py`` (pages and
partials) and of ``analysis/api_urls.py`` (the API), found by introspection, asked by owner / editor / viewer /
stranger / anonymous with its kwargs filled from a finished run (its project, its ranking's first neuron, its
steps, a file of its results).

``TABLE`` below is the one place that says what each URL answers. A URL pattern that the table does not mention
fails ``test_every_url_pattern_has_a_row``: a new view or partial cannot land without a decision about who may
use it. Nothing ever answers 500, whatever the method.

The rules (``Access``):
- ``READ``: members get an ``ok`` status, strangers 404 (the run does not exist for them), anonymous visitors
  the sign-in page (HTML) or 401 (API).
- ``WRITE``: the same, except that viewers get 403.
- ``LIST``: API collections: every signed-in user gets 200, and a stranger's answer does not include the run.
- ``NOT_ALLOWED``: the method is refused with 405 for anyone signed in (anonymous: sign-in / 401 as above).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import unquote, urlsplit

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from django.urls import Resolver404, URLPattern, URLResolver, resolve, reverse
from rest_framework.test import APIClient

from analysis import api_urls, urls, workspace
from analysis.models import StepKind
from analysis.workspace.results import results_of
from tests.support.clients import api_client_for, client_for
from tests.support.roles import ROLES, WRITERS
from tests.support.runs import request_for, succeeded_steps


@dataclass(frozen=True)
class Access:
    rule: str  # READ, WRITE, LIST or NOT_ALLOWED
    ok: tuple[int, ...] = (200,)  # what an allowed member gets


def READ(*ok: int) -> Access:
    return Access("READ", ok or (200,))


def WRITE(*ok: int) -> Access:
    return Access("WRITE", ok or (200,))


LIST = Access("LIST")
NOT_ALLOWED = Access("NOT_ALLOWED")


@dataclass(frozen=True)
class Row:
    """What one URL pattern answers, by method. ``kwargs``: fillers for URL kwargs the defaults below do not
    know (name -> function of the ``World``); ``body``: the POST body (a function of the ``World``)."""

    methods: dict[str, Access]
    kwargs: dict[str, Callable] = field(default_factory=dict)
    body: Callable | None = None
    note: str = ""


def _realtime_body(world, **extra):
    return {"model": world.model_pk, "sentence": "the cat sat on the [MASK] .", **extra}


def _new_recipe(world) -> int:
    """A saved manipulation recipe of the run (a new one per call: the owner's DELETE must not take the
    editor's)."""
    from analysis.models import ManipulationRecipe  # on the manipulation branch until merged

    return ManipulationRecipe.objects.create(project=world.project, run=world.run, created_by=world.people["owner"],
                                             name="matrix", recipe={}).pk


# Every URL of analysis/urls.py (key "page:<name>") and analysis/api_urls.py (key "api:<name>").
TABLE: dict[str, Row] = {
    # ---- pages and partials
    "page:run-list": Row({"GET": READ(), "POST": WRITE(302)}, note="POST starts a run with the defaults"),
    # 302: main's placeholder sends writers to the run list; the new-analysis form answers 200 (an empty POST
    # is an unbound form: 200 again).
    "page:run-new": Row({"GET": WRITE(200, 302), "POST": WRITE(200, 302)}),
    "page:run-new-estimate": Row({"GET": NOT_ALLOWED, "POST": WRITE()}),
    "page:run-new-ranking": Row({"GET": NOT_ALLOWED, "POST": WRITE()}),
    "page:run-detail": Row({"GET": READ()}),
    # A finished run cannot be cancelled or retried: the page comes back with the reason.
    "page:run-cancel": Row({"GET": NOT_ALLOWED, "POST": WRITE(302)}),
    "page:run-retry": Row({"GET": NOT_ALLOWED, "POST": WRITE(302)}),
    "page:run-analysis": Row({"GET": READ()}),
    "page:run-neuron": Row({"GET": READ()}),
    "page:run-ablation": Row({"GET": READ()}),
    "page:run-manipulation": Row({"GET": READ()}),
    "page:run-downloads": Row({"GET": READ()}),
    # Partials and files of the views; ids such as a curve's or a file's come from the links on the pages.
    "page:run-analysis-rankings": Row({"GET": READ()}),
    "page:run-analysis-neurons": Row({"GET": READ()}),
    "page:run-analysis-workbench": Row({"GET": READ()}),
    "page:run-analysis-map": Row({"GET": READ()}),
    "page:run-analysis-typed": Row({"GET": READ()}),
    "page:run-neuron-correlations": Row({"GET": READ()}),
    "page:run-ablation-charts": Row({"GET": READ()}),
    "page:run-ablation-csv": Row({"GET": READ()}),
    "page:run-ablation-svg": Row({"GET": READ()}),
    "page:run-download": Row({"GET": READ()}),
    "page:run-manipulation-output": Row({"GET": READ()}, note="no neurons: the empty state"),
    # No name: the page comes back with the reason (302); nothing saved.
    "page:run-manipulation-recipe-save": Row({"GET": NOT_ALLOWED, "POST": WRITE(302)}),
    "page:run-manipulation-recipe-delete": Row({"GET": NOT_ALLOWED, "POST": WRITE(302)},
                                               kwargs={"recipe_id": _new_recipe}),
    # ---- API
    "api:run-list": Row({"GET": LIST, "POST": NOT_ALLOWED}),
    "api:run-detail": Row({"GET": READ(), "POST": NOT_ALLOWED}),
    "api:run-logs": Row({"GET": READ(), "POST": NOT_ALLOWED}),
    "api:run-results": Row({"GET": READ(), "POST": NOT_ALLOWED}),
    "api:run-cancel": Row({"GET": NOT_ALLOWED, "POST": WRITE(409)}, note="409: the run has finished"),
    "api:run-retry": Row({"GET": NOT_ALLOWED, "POST": WRITE(409)}, note="409: the run has succeeded"),
    "api:project-run-list": Row({"GET": READ(), "POST": WRITE(201)},
                                body=lambda world: request_for(world.attached)),
    "api:api-run-result-file": Row({"GET": READ(), "POST": NOT_ALLOWED}),
    "api:api-run-download": Row({"GET": READ(), "POST": NOT_ALLOWED}, kwargs={
        "step_pk": lambda world: world.steps[StepKind.RANKING].pk, "name": lambda world: "ranking.csv"}),
    # An empty recipe: 400 with its field errors for writers (after the permission check).
    "api:project-recipe-list": Row({"GET": READ(), "POST": WRITE(400)}),
    "api:project-recipe-detail": Row({"GET": READ(), "DELETE": WRITE(204)},
                                     kwargs={"pk": _new_recipe}),
    "api:project-realtime-activations": Row({"GET": NOT_ALLOWED, "POST": READ()}, body=_realtime_body),
    "api:project-realtime-manipulate": Row(
        {"GET": NOT_ALLOWED, "POST": READ()},
        body=lambda world: _realtime_body(world, edits=[{"neuron": world.neuron, "operation": "zero"}])),
}


# ------------------------------------------------------------------------------------------------ the URLs


def _patterns(patterns, prefix: str):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{prefix}:{pattern.name}", pattern


def url_patterns() -> dict[str, URLPattern]:
    """Every named pattern of the workspace's pages (analysis/urls.py) and API (analysis/api_urls.py)."""
    return {**dict(_patterns(urls.urlpatterns, "page")), **dict(_patterns(api_urls.urlpatterns, "api"))}


PATTERNS = url_patterns()


def test_every_url_pattern_has_a_row():
    missing = sorted(set(PATTERNS) - set(TABLE))
    assert not missing, (f"URL patterns without a row in TABLE ({__name__}): {missing}. Add one saying who may "
                         "GET / POST / DELETE it (READ, WRITE, LIST or NOT_ALLOWED).")
    gone = sorted(set(TABLE) - set(PATTERNS))
    assert not gone, f"TABLE rows for URL patterns that no longer exist: {gone}"


def test_every_row_of_the_table_says_get_and_its_rules_are_known():
    for key, row in TABLE.items():
        assert "GET" in row.methods, f"{key}: say what GET answers"
        assert all(a.rule in ("READ", "WRITE", "LIST", "NOT_ALLOWED") for a in row.methods.values()), key


# ------------------------------------------------------------------------------------------------ the world


@dataclass
class World:
    """The finished run and everything a URL's kwargs can be filled from."""

    people: dict
    attached: dict
    run: object
    neuron: str
    steps: dict  # kind -> first succeeded step of that kind
    result_file: tuple[int, str]  # (step id, file name) of a downloadable result file
    links: dict = field(default_factory=dict)  # pattern key -> a URL of it that the pages link to

    @property
    def project(self):
        return self.run.project

    @property
    def model_pk(self) -> int:
        return self.attached["model"].pk


@pytest.fixture
def world(people, attached, finished_run):
    workspace.loaded.clear()  # results are cached by content key; this test's files are in new folders
    ranking_step = succeeded_steps(finished_run, StepKind.RANKING)[0]
    ranking = workspace.ranking_of(ranking_step)
    steps = {}
    for step in workspace.RunView(finished_run).steps:
        steps.setdefault(step.kind, step)
    with_files = [r for r in results_of(finished_run, with_data=False) if r.files]
    first = with_files[0]
    world = World(people=people, attached=attached, run=finished_run, neuron=ranking.top(1)[0].label, steps=steps,
                  result_file=(first.step, sorted(first.files)[0]))
    owner = client_for(people, "owner")
    pages = [url_of(key, world) for key in TABLE if key in PATTERNS and not needs_a_link(key)]
    world.links = linked_urls(lambda url: html_of(owner, url), pages)
    return world


LINK = re.compile(r'(?:href|src|action|hx-get|hx-post|hx-delete)="([^"]+)"')


def linked_urls(html_of, pages) -> dict[str, str]:
    """Pattern key -> the first URL of that pattern that one of ``pages`` links to (``html_of(url)``: the page's
    HTML, or "" when it answers something else). A view's partials and downloads take ids the views make up (a
    curve id, a file name): the pages' own links say what they are."""
    found = {}
    for page in pages:
        for link in LINK.findall(html_of(page)):
            link = html.unescape(link)
            try:
                match = resolve(urlsplit(link).path)
            except Resolver404:
                continue
            key = f"page:{match.url_name}" if match.namespace == "analysis" else f"api:{match.url_name}"
            if key in PATTERNS:
                found.setdefault(key, link)
    return found


def html_of(client, url: str) -> str:
    answer = client.get(url)
    ok = answer.status_code == 200 and "html" in answer.get("Content-Type", "")
    return answer.content.decode(errors="replace") if ok else ""


# Filled by the kwarg's name. A pattern with other kwargs than the project and the run takes, in this order: its
# row's ``kwargs``, else a URL of it that the pages link to (``World.links``), else these.
BASIC_KWARGS = {"pk", "run_id", "project_pk", "run_pk"}
PAGE_KWARGS = {
    "pk": lambda world: world.project.pk,
    "run_id": lambda world: world.run.pk,
    "neuron": lambda world: world.neuron,
    "step_id": lambda world: world.result_file[0],
    "name": lambda world: world.result_file[1],
}
API_KWARGS = {
    "pk": lambda world: world.run.pk,
    "run_pk": lambda world: world.run.pk,
    "project_pk": lambda world: world.project.pk,
    "step_pk": lambda world: world.result_file[0],
    "name": lambda world: world.result_file[1],
}


def kwarg_names(pattern: URLPattern) -> list[str]:
    return list(pattern.pattern.converters)


def needs_a_link(key: str) -> bool:
    return bool(set(kwarg_names(PATTERNS[key])) - BASIC_KWARGS) and not TABLE[key].kwargs


def url_of(key: str, world: World) -> str:
    kind, name = key.split(":", 1)
    pattern, row = PATTERNS[key], TABLE[key]
    if needs_a_link(key) and key in world.links:
        return world.links[key]
    fillers = {**(PAGE_KWARGS if kind == "page" else API_KWARGS), **row.kwargs}
    unknown = [k for k in kwarg_names(pattern) if k not in fillers]
    assert not unknown, (f"{key}: no filler for the URL kwargs {unknown} and no page links to it; add them to "
                         "its row's kwargs=")
    kwargs = {k: fillers[k](world) for k in kwarg_names(pattern)}
    return reverse(f"analysis:{name}" if kind == "page" else name, kwargs=kwargs)


def client_for_key(key: str, world: World, who: str):
    """A signed-in test client for a page row, a DRF client for an API row."""
    return (client_for if key.startswith("page:") else api_client_for)(world.people, who)


def ask(client, method: str, url: str, body):
    if method == "GET":
        return client.get(url)
    if method == "DELETE":
        return client.delete(url)
    if isinstance(client, APIClient):
        return client.post(url, body or {}, format="json")
    return client.post(url, body or {})


# ------------------------------------------------------------------------------------------------ the matrix


def expected(key: str, access: Access, who: str) -> tuple[int, ...]:
    if who == "anonymous":
        return (302,) if key.startswith("page:") else (401,)
    if access.rule == "NOT_ALLOWED":
        return (405,)
    if access.rule == "LIST":
        return (200,)
    if who == "stranger":
        return (404,)
    if access.rule == "WRITE" and who not in WRITERS:
        return (403,)
    return access.ok


def check(key: str, method: str, access: Access, who: str, world: World) -> str | None:
    """None when ``who``'s ``method`` on the URL answers as the table says; else what went wrong."""
    url = url_of(key, world)
    body = TABLE[key].body(world) if method == "POST" and TABLE[key].body else None
    answer = ask(client_for_key(key, world, who), method, url, body)
    status = answer.status_code
    if status >= 500:
        return f"{who} {method} {url}: {status} (a server error)"
    want = expected(key, access, who)
    if status not in want:
        return f"{who} {method} {url}: {status}, expected {' or '.join(map(str, want))}"
    if who == "anonymous" and key.startswith("page:"):
        target = urlsplit(answer["Location"])
        if target.path != resolve_url(settings.LOGIN_URL) or \
                f"next={urlsplit(url).path}" not in unquote(target.query):
            return f"anonymous {method} {url}: redirected to {answer['Location']}, not the sign-in page"
    if access.rule == "LIST" and who == "stranger" and world.run.pk in _ids(answer.json()):
        return f"stranger {method} {url}: the answer lists run {world.run.pk}"
    return None


def _ids(data) -> set:
    items = data.get("results", data) if isinstance(data, dict) else data
    return {item.get("id") for item in items if isinstance(item, dict)}


@pytest.mark.parametrize("key", sorted(set(TABLE) & set(PATTERNS)))
def test_each_role_gets_what_the_table_says(key, world):
    """Each method of the row, each role; every mismatch is listed (not only the first). Methods the row does
    not declare (POST on a page that only reads, PUT, DELETE) may be refused, but never with a 500. (One test
    per URL, not per role: the finished run is computed once for all of them.)"""
    problems = []
    for method, access in TABLE[key].methods.items():
        for who in ROLES:
            problem = check(key, method, access, who, world)
            if problem:
                problems.append(problem)
    url = url_of(key, world)
    for who in ("owner", "viewer", "stranger"):
        client = client_for_key(key, world, who)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            if method not in TABLE[key].methods:
                status = getattr(client, method.lower())(url).status_code
                if status >= 500:
                    problems.append(f"{who} {method} {url}: {status} (a server error)")
    assert not problems, f"{key}:\n" + "\n".join(problems)


def test_the_matrix_catches_a_stranger_who_sees_a_run(world, monkeypatch):
    """The check itself: were the one permission path to let a stranger see the run, it would say so."""
    from analysis.runs import selectors

    monkeypatch.setattr(selectors, "run_for", lambda user, run_pk: world.run)
    problem = check("page:run-analysis", "GET", READ(), "stranger", world)
    assert problem and "200, expected 404" in problem
