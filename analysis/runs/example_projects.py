"""The example projects (``manage.py load_examples``, started by ``scripts/serve``): each entry of
``analysis.examples.catalogue`` becomes a project owned by the ``examples`` account, visible read-only to every
signed-in user (``Project.is_example``), with its uploads and one run through the real pipeline.

Safe to call again: a project, an upload or a run that is already there is reused (a run is matched by its
normalised request), so a second start queues nothing and the results are the cached ones. A failed or cancelled
example run is retried (its finished steps are reused).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.db import transaction

from analysis.runs import services
from analysis.examples.catalogue import EXAMPLES, Example, ExampleFiles, Unavailable
from analysis.models import Run, RunState
from projects.models import Project
from projects.selectors import library_of
from projects.services import (attach_upload, create_corpus_upload, create_model_upload, create_project,
                               create_test_set_upload)

EXAMPLES_USERNAME = "examples"
EXAMPLES_STORAGE_BYTES = 20 * 1024**3  # room for the examples' uploads (MPNet alone is 440 MB) and their results


@dataclass
class Loaded:
    example: Example
    project: Project | None = None
    run: Run | None = None
    action: str = ""  # "run created", "run reused (succeeded)", "run retried", or why the example was skipped


def examples_account():
    """The account that owns the example projects: no password (nobody signs in as it), quotas to hold them all —
    raised on every load (a catalogue that grew needs more runs at once; an operator's larger figure is kept)."""
    user, created = get_user_model().objects.get_or_create(
        username=EXAMPLES_USERNAME, defaults={"email": "examples@neurox.invalid"})
    if created:
        user.set_unusable_password()
    needed = {"storage_quota_bytes": EXAMPLES_STORAGE_BYTES, "max_concurrent_runs": len(EXAMPLES)}
    raised = [field for field, least in needed.items() if (getattr(user, field) or 0) < least]
    for field in raised:
        setattr(user, field, needed[field])
    if created or raised:
        user.save(update_fields=["password", *raised] if created else raised)
    return user


def _project(owner, entry: Example) -> Project:
    project = Project.objects.filter(owner=owner, is_example=True, name=entry.name).first()
    if project is None:
        with transaction.atomic():
            project = create_project(owner, name=entry.name, description=entry.description)
            Project.objects.filter(pk=project.pk).update(is_example=True)
            project.is_example = True
    return project


def _opened(stack: contextlib.ExitStack, path: Path) -> File:
    return File(stack.enter_context(open(path, "rb")), name=path.name)


def _uploads(owner, project: Project, files: ExampleFiles) -> dict:
    """The example's uploads attached to its project, each made once (found again by its name)."""
    models = []
    for name, folder in files.models:
        upload = library_of(owner, "model").filter(name=name).first()  # one upload for every example using it
        if upload is None:
            with contextlib.ExitStack() as stack:
                parts = [_opened(stack, p) for p in sorted(folder.iterdir()) if p.is_file()]
                upload = create_model_upload(owner, files=parts, name=name)
        if not project.model_uploads.filter(pk=upload.pk).exists():
            attach_upload(owner, project, upload)
        models.append(upload)
    corpus = library_of(owner, "corpus").filter(name=files.corpus.name, label_column=files.label_column).first()
    if corpus is None:
        with contextlib.ExitStack() as stack:
            corpus = create_corpus_upload(owner, file=_opened(stack, files.corpus), label_column=files.label_column,
                                          name=files.corpus.name)
    if not project.corpus_uploads.filter(pk=corpus.pk).exists():
        attach_upload(owner, project, corpus)
    test_set = None
    if files.test_set:
        sources, references = files.test_set
        test_set = project.test_set_uploads.filter(name=sources.name).first()
        if test_set is None:
            with contextlib.ExitStack() as stack:
                test_set = create_test_set_upload(
                    owner, file=_opened(stack, sources), name=sources.name,
                    reference_file=_opened(stack, references) if references else None)
            attach_upload(owner, project, test_set)
    return {"models": models, "corpus": corpus, "test_set": test_set}


def example_request(entry: Example, uploads: dict, *, small: bool) -> dict:
    request = {**entry.analysis(small), "models": [m.pk for m in uploads["models"]], "corpus": uploads["corpus"].pk}
    if request.get("layers") is None:
        request.pop("layers", None)
    if "model_ablation" in request:
        request["model_ablation"] = {**request["model_ablation"], "test_set": uploads["test_set"].pk}
    return request


def _run(owner, project: Project, request: dict) -> tuple[Run, str]:
    wanted = services.plan_run(project, request).request
    for run in project.runs.order_by("-pk"):
        if run.request == wanted:
            if run.state in (RunState.FAILED, RunState.CANCELLED):
                return services.retry_run(owner, run), "run retried"
            return run, f"run reused ({run.state})"
    return services.create_run(owner, project, request), "run created"


def load_examples(slugs=None, *, small: bool = False, runs: bool = True, log=print) -> list[Loaded]:
    """Make (or find) the example projects ``slugs`` (default: all) and start (or find) their runs."""
    owner = examples_account()
    work_root = Path(settings.DATA_DIR) / "examples" / ("small" if small else "full")
    sources = {"ud_conllu": settings.NEUROX_EXAMPLES_UD_CONLLU}
    loaded = []
    for entry in EXAMPLES:
        if slugs and entry.slug not in slugs:
            continue
        result = Loaded(entry)
        work = work_root / entry.slug
        work.mkdir(parents=True, exist_ok=True)
        try:
            files = entry.make_files(work, small, sources)
        except Unavailable as reason:
            result.action = f"skipped: {reason}"
        else:
            result.project = _project(owner, entry)
            uploads = _uploads(owner, result.project, files)
            if runs:
                result.run, result.action = _run(owner, result.project, example_request(entry, uploads, small=small))
            else:
                result.action = "uploads ready (no run asked for)"
        log(f"{entry.slug}: {result.action}")
        loaded.append(result)
    return loaded
