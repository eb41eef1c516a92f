"""The registry of step tasks: services send by name, so every kind must name a registered task on its queue,
and services must not import the tasks module (tasks → computations → services would close a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

from analysis.models import StepKind
from analysis.step_tasks import TASK_FOR_KIND
from neurox_site.celery import app


def test_every_step_kind_names_a_registered_task_on_its_queue():
    assert set(TASK_FOR_KIND) == set(StepKind.values)
    for name, queue in TASK_FOR_KIND.values():
        assert app.tasks[name].queue == queue


def test_services_do_not_import_the_tasks_module():
    tree = ast.parse(Path("analysis/services.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
                 for alias in node.names}
    assert not {"tasks", "analysis.tasks"} & imported
