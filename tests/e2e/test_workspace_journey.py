"""The researcher's whole journey in a real browser (system Chromium) against the real uvicorn server, REAL
Celery worker processes on Redis, and PostgreSQL: sign in, upload a tiny model and a corpus into the project,
start an analysis, watch its log lines arrive live, then the workspace: the Analysis view (three neurons into
the pool, the activation map), a neuron page, the Ablation chart, the Manipulation view (the output changes when
a slider moves), and a colleague who opens the shared URL and sees the same state.

Every page of the journey is checked with axe-core (no serious or critical violation) and saved as a full-page
screenshot (CI artefact, see tests/e2e/screenshots.py).

The workspace steps are written against the URL names of ``analysis/urls.py`` and generic, accessible locators
(roles and labels). Every view is checked for what it shows: a view that stopped showing it fails the test. What
the locators expect of the views:

- Analysis: buttons or links named "Add … to the pool" (one per neuron row); the pool in the URL (``pools=``, pushed by
  htmx); a section headed "Activation map" showing corpus words; links to neuron pages (``/neurons/<label>/``).
- Neuron page: the neuron's label in the ``<h1>``.
- Ablation: the chart as an ``<svg>`` with at least one drawn curve (``path`` or ``polyline``), or a ``canvas``.
- Manipulation: a textbox labelled "Sentence…" (and an "Update" button if it is not live), one ``slider``
  per neuron (``<input type=range>`` with a label) and a region whose accessible name contains "manipulated"
  (e.g. ``<section aria-labelledby>`` with an "Original and manipulated output" heading).
"""

from __future__ import annotations

import os
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connections
from django.urls import reverse
from playwright.sync_api import Page, expect

from analysis import workspace
from analysis.models import Run, RunState, StepKind
from neurox_site.celery import app
from tests.support.browser import VIEWPORT, sign_in
from tests.support.celery_worker import CeleryProcess
from tests.support.corpora import WORDS, conllu_text
from tests.support.runs import succeeded_steps

from .a11y import assert_no_serious_violations
from .server import ServerProcess

pytestmark = [
    pytest.mark.e2e, pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("REDIS_URL") and os.environ.get("CI", "").lower() != "true",
                       reason="the journey needs Redis for its real workers: set REDIS_URL"),
]

RUN_URL = re.compile(r"/projects/\d+/runs/(\d+)/$")
RUN_MINUTES = 4  # a tiny model over 150 short sentences, on a machine shared with other test runs
N_SENTENCES = 150
SENTENCE = "the cat sat on the [MASK] ."  # the tiny BERT is a masked LM: the output is its fill-mask predictions
NOUNS = re.compile(r"\b(" + "|".join(WORDS["NOUN"]) + r")\b")
WORKER_ENV = {"OMP_NUM_THREADS": "1", "NEUROX_EXTRACT_CHUNK_WORDS": "64"}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def live(django_db_setup, tmp_path_factory):
    """A uvicorn server that sends tasks to Redis (not in-process), a realtime worker, and ``start_pipeline()``
    to start the gpu + cpu worker when the test wants it (so the run page is open before any work is done)."""
    database = str(connections["default"].settings_dict["NAME"])
    folder = tmp_path_factory.mktemp("journey")
    app.control.purge()
    server = ServerProcess(database, folder, real_workers=True)
    workers = []

    def start(name: str, queues: str) -> CeleryProcess:
        worker = CeleryProcess(database, ["worker", "-Q", queues, "--concurrency", "1", "-n", f"{name}@%h",
                                          "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
                               folder / f"{name}.log", WORKER_ENV)
        workers.append(worker)
        return worker

    realtime = start("journey-realtime", "realtime")
    server.start_pipeline = lambda: start("journey-pipeline", "gpu,cpu")
    server.workers = workers
    realtime.wait_for_line(" ready.", timeout=120)
    yield server
    for worker in workers:
        worker.stop()
    server.stop()
    app.control.purge()


@pytest.fixture
def journey_page(live, transactional_db, chromium, request):
    """A fresh browser context on the journey's server; on failure the server's and workers' logs are printed.
    ``page.problems`` collects script errors and server errors (5xx)."""
    context = chromium.new_context(base_url=live.url, viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"script error: {error}"))
    page.on("response", lambda response: page.problems.append(f"HTTP {response.status} {response.url}")
            if response.status >= 500 else None)
    yield page
    context.close()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("---- journey server log ----\n" + live.log())
        for worker in live.workers:
            print(f"---- {worker.log_path.name} ----\n{worker.log()}")


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "toy-pos.conllu"
    path.write_text(conllu_text(N_SENTENCES, seed=3), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ the journey


def test_sign_in_to_a_manipulated_output(journey_page: Page, live, people, tiny_bert, corpus_file, screenshots):
    page, project = journey_page, people["project"]
    shoot = Checkpoints(page, screenshots)

    sign_in(page, "olivia")
    shoot("home")
    upload_model(page, project, tiny_bert)
    shoot("model uploaded")
    upload_corpus(page, project, corpus_file)
    shoot("corpus uploaded")
    run = start_analysis(page, project, shoot)
    watch_the_run(page, run, live, shoot)

    pool = top_neurons(run, 3)
    for step in (analysis_view, neuron_page, ablation_view, manipulation_view):
        step(page, run, pool, shoot)
    shared_url_shows_the_same_state(page, run, pool, people, live, shoot)

    assert not page.problems, page.problems


class Checkpoints:
    """``shoot("name")``: every page of the journey gets a screenshot and the accessibility check."""

    def __init__(self, page: Page, screenshots):
        self.page, self.screenshots = page, screenshots

    def __call__(self, name: str) -> None:
        self.page.wait_for_load_state("networkidle")
        self.screenshots.take(self.page, name)
        assert_no_serious_violations(self.page)


# ---- the uploads and the run


def upload_model(page: Page, project, model_dir) -> None:
    page.goto(reverse("projects:project-upload", args=[project.pk, "model"]))
    page.get_by_label("Name").fill("tiny bert")
    page.set_input_files("#id_files", [str(p) for p in sorted(model_dir.iterdir()) if p.is_file()])
    page.get_by_role("button", name="Upload and check").click()
    page.wait_for_url(f"**{project.get_absolute_url()}", timeout=120_000)
    expect(page.locator("#uploads-panel")).to_contain_text("tiny bert")


def upload_corpus(page: Page, project, corpus) -> None:
    page.goto(reverse("projects:project-upload", args=[project.pk, "corpus"]))
    page.select_option("#id_format", "conllu")
    page.select_option("#id_label_column", "upos")
    page.set_input_files("#id_file", str(corpus))
    page.get_by_role("button", name="Upload and check").click()
    page.wait_for_url(f"**{project.get_absolute_url()}", timeout=120_000)
    expect(page.locator("#uploads-panel")).to_contain_text(f"{N_SENTENCES} sentences")


def start_analysis(page: Page, project, shoot) -> Run:
    """The new-analysis form with its defaults plus two rankings and a probe-ablation curve."""
    page.goto(reverse("analysis:run-new", args=[project.pk]))
    shoot("new analysis")
    fill_new_analysis_form(page)
    page.wait_for_url(RUN_URL)
    return Run.objects.get(pk=int(RUN_URL.search(page.url).group(1)))


def fill_new_analysis_form(page: Page) -> None:
    """The form, by its labels: the project's model and corpus, two rankings added through the rankings
    dialog, a probe-ablation curve (for the Ablation chart), then start."""
    page.get_by_role("group", name="Models").get_by_role("checkbox").first.check()
    page.get_by_label("Corpus", exact=True).select_option(index=1)
    for method in ("probeless", "anova"):
        page.get_by_role("button", name=re.compile(r"add a ranking", re.I)).click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Scheme").select_option(method)
        dialog.get_by_role("button", name=re.compile(r"^add", re.I)).click()
        expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name=re.compile(r"^remove ranking", re.I))).to_have_count(2)
    page.get_by_label("Probe ablation").check()
    page.get_by_role("button", name=re.compile(r"^start", re.I)).click()


def watch_the_run(page: Page, run: Run, live, shoot) -> None:
    """The run page is open while the run waits for a worker; the worker starts, and log lines and the state
    arrive over the websocket without a reload."""
    log = page.locator("#run-log li")
    expect(log.first).to_be_visible()
    lines_before = log.count()
    shoot("run waiting")
    pipeline = live.start_pipeline()
    pipeline.wait_for_line(" ready.", timeout=120)
    expect(log).not_to_have_count(lines_before, timeout=60_000)  # new lines, pushed live
    deadline = time.monotonic() + RUN_MINUTES * 60
    while Run.objects.values_list("state", flat=True).get(pk=run.pk) in (RunState.QUEUED, RunState.RUNNING):
        assert time.monotonic() < deadline, f"the run did not finish in {RUN_MINUTES} min:\n{pipeline.log()}"
        time.sleep(0.5)
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    expect(page.locator("#run-status .badge")).to_have_text("Succeeded", timeout=30_000)
    assert log.count() > lines_before + 3
    shoot("run finished")


def top_neurons(run: Run, k: int) -> list[str]:
    """The labels of the first ranking's top ``k`` neurons (read as the views read them)."""
    workspace.loaded.clear()
    step = succeeded_steps(run, StepKind.RANKING)[0]
    return [n.label for n in workspace.ranking_of(step).top(k)]


def workspace_url(name: str, run: Run, query: str = "", **kwargs) -> str:
    """The URL of the workspace page ``name`` (analysis/urls.py) of ``run``, with ``query`` and extra kwargs."""
    url = reverse(f"analysis:{name}", kwargs={"pk": run.project_id, "run_id": run.pk, **kwargs})
    return f"{url}?{query}" if query else url


def pool_of(url: str) -> list[str]:
    """The pool held in a URL's query string (``pools=L0:1,L1:2``)."""
    query = parse_qs(urlsplit(url).query)
    return [label for value in query.get("pools", []) for label in value.split(",") if label]


# ---- the workspace views


def analysis_view(page: Page, run: Run, pool: list[str], shoot):
    """Three neurons into the pool by their "Add to the pool" buttons; the pool is in the URL; the activation
    map shows corpus words."""
    page.goto(workspace_url("run-analysis", run))
    shoot("analysis")
    adding = re.compile(r"^add\b.*\bpool", re.I)  # a button, or a link styled as one (it works without script)
    add = page.get_by_role("button", name=adding).or_(page.get_by_role("link", name=adding))
    for i in range(3):
        add.first.click()  # the neuron added now offers "Remove": the next "Add" is the first again
        expect(page).to_have_url(re.compile(r"[?&]pools="))
        page.wait_for_function("n => new URLSearchParams(location.search).get('pools')?.split(',').length >= n",
                               arg=i + 1)
    assert len(pool_of(page.url)) == 3, page.url
    activation_map = page.locator("section, figure, div").filter(
        has=page.get_by_role("heading", name=re.compile(r"activation map", re.I))).last
    expect(activation_map).to_contain_text(NOUNS)
    shoot("analysis with a pool of three")


def neuron_page(page: Page, run: Run, pool: list[str], shoot):
    """A neuron's page, deep-linked: its label in the heading."""
    page.goto(workspace_url("run-neuron", run, neuron=pool[0]))
    expect(page.locator("h1")).to_contain_text(pool[0])
    shoot("neuron page")


def ablation_view(page: Page, run: Run, pool: list[str], shoot):
    """The Ablation chart draws the probe-ablation curve the form asked for."""
    page.goto(workspace_url("run-ablation", run))
    shoot("ablation")
    assert succeeded_steps(run, StepKind.PROBE_ABLATION), "the run computed no probe-ablation curve"
    curves = page.locator("main svg path, main svg polyline, main canvas")
    expect(curves.first).to_be_visible()


def manipulation_view(page: Page, run: Run, pool: list[str], shoot):
    """With the pool in the URL, moving a neuron's slider changes the manipulated output."""
    page.goto(workspace_url("run-manipulation", run, f"pools={','.join(pool)}"))
    shoot("manipulation")
    output = page.get_by_role("region", name=re.compile(r"manipulated", re.I))
    expect(output).to_be_visible()
    empty = output.inner_text()  # no sentence yet: the empty state
    page.get_by_role("textbox", name=re.compile(r"^sentence", re.I)).fill(SENTENCE)
    update = page.get_by_role("button", name=re.compile(r"^update", re.I))
    if update.count():
        update.first.click()
    expect(output).not_to_have_text(empty, timeout=60_000)  # the realtime worker's first answer
    before = output.inner_text()
    slider = page.get_by_role("slider").first
    slider.focus()
    page.keyboard.press("End")  # the top of its range, by keyboard (as a person without a mouse would)
    expect(output).not_to_have_text(before, timeout=60_000)
    shoot("manipulation after a slider move")


def shared_url_shows_the_same_state(page: Page, run: Run, pool: list[str], people, live, shoot) -> None:
    """A colleague (the viewer, in a browser of their own) opens the URL with the owner's pool and sees the
    same state: the tabs of every view carry the pool, and the pool's neurons are on the page, again after a
    reload."""
    shared = workspace_url("run-analysis", run, f"pools={','.join(pool)}")
    colleague = page.context.browser.new_context(base_url=live.url, viewport=VIEWPORT)
    try:
        other = colleague.new_page()
        sign_in(other, people["viewer"].username)
        other.goto(shared)
        tabs = other.get_by_role("navigation", name="Views of this run")
        for tab in ("Analysis", "Ablation", "Manipulation"):
            href = tabs.get_by_role("link", name=tab).get_attribute("href")
            assert pool_of(href) == pool, f"the {tab} tab does not carry the pool {pool}: {href}"
        for attempt in ("opened", "reloaded"):
            for label in pool:
                expect(other.locator("main"), f"{label} after the URL was {attempt}").to_contain_text(label)
            other.reload()
        Checkpoints(other, shoot.screenshots)("shared URL opened by a colleague")
    finally:
        colleague.close()
