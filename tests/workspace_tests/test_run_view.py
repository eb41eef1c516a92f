"""The read side's one RunView: the run's models (one definition: a model removed from the project stays in the
run as "removed model", its results still shown, and is not offered where the model itself is needed), its parts
told apart by what their step type builds, made once per Run instance; and the read side never importing the
worker side (the step runner, ``analysis.tasks``)."""

from __future__ import annotations

import ast
import importlib.util
import re
from html import unescape
from pathlib import Path

import pytest
from django.urls import reverse

from analysis.models import StepKind
from analysis.workspace import REMOVED_MODEL, RunView
from projects.services.attachments import detach_upload
from tests.support.clients import client_for
from tests.support.urls import run_page_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_results_cache")]

READ_SIDE = ["analysis.workspace", "analysis.workspace.results", "analysis.workspace.recipes", "analysis.workspace.explore.views",
             "analysis.workspace.neuron.views", "analysis.workspace.ablation.views", "analysis.workspace.manipulation.views",
             "analysis.workspace.downloads.views"]
WORKER_SIDE = {"analysis.tasks", "analysis.runs.runner"}
OURS = ("analysis", "projects", "accounts", "neurox_site")


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_run_view_knows_each_model_with_its_store_statistics_and_rankings(two_model_run):
    view = RunView(two_model_run)
    extracts = list(two_model_run.steps.filter(kind=StepKind.EXTRACT).order_by("id"))
    assert [m.store_key for m in view.models] == [s.result_key for s in extracts]
    assert [m.name for m in view.models] == ["tiny bert", "tiny bert two"]
    assert [m.pk for m in view.models] == [s.params["model"] for s in extracts]
    crossmodel = two_model_run.steps.get(kind=StepKind.CROSSMODEL)
    for model in view.models:
        assert model.statistics_step.kind == StepKind.STATISTICS
        assert model.statistics_step.params["store_key"] == model.store_key
        assert [s.kind for s in model.ranking_steps] == [StepKind.RANKING, StepKind.CROSSMODEL]
        assert model.ranking_steps[-1] == crossmodel and model.store().n_words > 0
    assert {s.kind for s in view.rankings} == {StepKind.RANKING, StepKind.CROSSMODEL}
    assert RunView.of(two_model_run) is RunView.of(two_model_run)  # once per Run instance (a request)


def test_a_model_removed_from_the_project_stays_in_the_run_by_name(people, two_model_run):
    second = people["project"].model_uploads.get(name="tiny bert two")
    detach_upload(people["owner"], people["project"], second)
    view = RunView(two_model_run)
    first, removed = view.models
    assert removed.name == REMOVED_MODEL and removed.upload is None and removed.pk is None
    assert view.usable_models == [first] and view.usable_model(second.pk) is None
    viewer = client_for(people, "viewer")

    analysis = text(viewer.get(run_page_url(two_model_run, "analysis/")).content.decode())
    assert f"cross-model maxcorr · {REMOVED_MODEL}" in analysis  # its results are still shown
    page = viewer.get(run_page_url(two_model_run, f"neurons/L1:3/?model={removed.store_key}"))
    assert page.status_code == 200 and f"Model: {REMOVED_MODEL}" in text(page.content.decode())

    crossmodel = two_model_run.steps.get(kind=StepKind.CROSSMODEL)
    typed = viewer.get(run_page_url(two_model_run, f"analysis/typed/?ranking={crossmodel.pk}&of=1&text=the+cat"))
    assert "no longer in the project, so a typed sentence cannot run" in text(typed.content.decode())

    manipulation = reverse("analysis:run-manipulation", args=[people["project"].pk, two_model_run.pk])
    html = viewer.get(f"{manipulation}?model={second.pk}").content.decode()  # not offered: the first instead
    assert f'name="model" value="{first.pk}"' in html and f'value="{second.pk}"' not in html


def _imports(module: str) -> set[str]:
    """The modules of ours that ``module`` imports anywhere in its source (function-level imports too)."""
    spec = importlib.util.find_spec(module)
    package = module if spec.submodule_search_locations else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")}
    return {name for name in found if name.split(".")[0] in OURS}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, AttributeError, ValueError):
        return False


def test_the_read_side_never_imports_the_worker_side():
    seen, todo = set(), list(READ_SIDE)
    while todo:
        module = todo.pop()
        if module in seen or not _is_module(module):
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a module imports its packages
        todo += sorted(_imports(module))
    assert "analysis.workspace.explore.presenter" in seen and "analysis.steps.registry" in seen
    assert not seen & WORKER_SIDE, sorted(seen & WORKER_SIDE)
