"""The one step task: services send every kind by name to the queue its step type names, every kind names a
queue a worker listens on, and services must not import the tasks module (tasks → runner → services would close
a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

from analysis.models import StepKind
from analysis.steps import CPU, GPU, step_type, step_types
from analysis.steps.queues import RUN_STEP_TASK
from neurox_site.celery import app


def test_every_step_kind_has_a_type_on_a_worker_queue_and_one_task_runs_them_all():
    assert {t.kind for t in step_types()} >= set(StepKind.values)
    assert {step_type(kind).queue for kind in StepKind.values} <= {GPU, CPU}
    assert step_type(StepKind.EXTRACT).queue == GPU and step_type(StepKind.MODEL_ABLATION).queue == GPU
    assert RUN_STEP_TASK in app.tasks


def test_services_do_not_import_the_tasks_module():
    tree = ast.parse(Path("analysis/runs/services.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
                 for alias in node.names}
    assert not {"tasks", "analysis.tasks"} & imported
