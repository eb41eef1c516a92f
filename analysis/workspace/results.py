"""Reading a run's results for clients (the API): small ones (rankings, curves) as JSON, array results as files,
read through the run's ``RunView`` (``analysis.workspace``).

Only results of the run's own succeeded steps are reachable, and a file only by a name taken from the result's
own listing, so no path a client sends is ever joined onto the results folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.http import Http404

from analysis.models import Run
from analysis.steps.registry import step_type
from analysis.steps.storage import result_path
from analysis.workspace import RunView, document_of


@dataclass
class StepResult:
    step: int
    kind: str
    title: str
    key: str
    bytes: int
    meta: dict
    data: dict | None
    files: dict[str, Path]  # name inside the result → file on disk


def _files(relative: str) -> dict[str, Path]:
    path = result_path(relative)
    if path.is_file():
        return {path.name: path}
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p for p in sorted(path.rglob("*")) if p.is_file()}
    return {}


def results_of(run: Run, with_data: bool = True) -> list[StepResult]:
    """The results of ``run``'s succeeded steps, in step order (``with_data``: read the JSON ones)."""
    view = RunView.of(run)
    found = []
    for step in view.steps:
        result = view.ready_results.get(step.result_key)
        if result is None:
            continue
        files = _files(result.path)
        data = document_of(step) if with_data and step_type(step.kind).inline and len(files) == 1 else None
        found.append(StepResult(step=step.pk, kind=step.kind, title=step.title, key=result.key, bytes=result.bytes,
                                meta=result.meta, data=data, files=files))
    return found


def result_file(run: Run, step_id: int, name: str) -> Path:
    """The file ``name`` of the result of ``run``'s step ``step_id``, else ``Http404``."""
    for result in results_of(run, with_data=False):
        if result.step == step_id and name in result.files:
            return result.files[name]
    raise Http404("No such result file in this run.")
