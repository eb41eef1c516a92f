"""Fixtures for the browser tests: a real uvicorn server on the test database, the system Chromium, and what
several of them start from (uploads in the server's storage, a bare run).

The server runs in another process, so it only sees committed data: the tests use pytest-django's
``transactional_db`` (data is committed, then the tables are flushed after each test). On SQLite the test
database must then be a file, not pytest-django's in-memory default; tests/settings.py makes it one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from analysis.runs import services
from analysis.models import Run, Step, StepKind
from tests.assets import skip_or_fail_in_ci
from tests.e2e.server import ServerProcess
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.support.uploads import attach_model_and_corpus


@pytest.fixture(scope="session")
def system_chromium() -> Path:
    """The system Chromium's path. Missing: a skip on a workstation, a failure in CI (``CI=true``), where it is
    installed and the browser tests must run."""
    if not CHROMIUM.exists():
        skip_or_fail_in_ci(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests")
    return CHROMIUM


@pytest.fixture(scope="module")
def chromium(system_chromium, django_db_setup):
    """The system Chromium under Playwright (never a downloaded browser).

    Playwright's sync API keeps an asyncio loop running in this thread, so Django refuses ORM calls here
    (SynchronousOnlyOperation) although they are plain synchronous code: while the browser is up, and only then
    (module scope, so no other test module runs with it), ``DJANGO_ALLOW_ASYNC_UNSAFE`` lets them through. The
    test database is created before (``django_db_setup``) for the same reason."""
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=str(system_chromium), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, tmp_path_factory):
    """uvicorn serving ``neurox_site.asgi`` on the test database (see tests/e2e/server.py); ``.url``, ``.log()``."""
    connection = connections["default"]
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.fail("The browser tests need a file-based SQLite test database (TEST NAME).", pytrace=False)
    database_name = str(connection.settings_dict["NAME"])  # the test database's, since django_db_setup
    server = ServerProcess(database_name, tmp_path_factory.mktemp("asgi-server"))
    yield server
    server.stop()


@pytest.fixture
def page(system_chromium, asgi_server, transactional_db, chromium, request):
    """A fresh browser context (no cookies) on a laptop-sized viewport; ``page.goto("/path")`` is relative to
    the server. On failure the server's log is printed, which holds the traceback of a server error. Files the
    server stored during the test are removed afterwards (the flush after a transactional test removes their
    rows, not them; the real model alone is 90 MB)."""
    media_before = _entries_under(Path(settings.MEDIA_ROOT))
    context = chromium.new_context(base_url=asgi_server.url, viewport=VIEWPORT)
    context.set_default_timeout(30_000)  # the 90 MB model upload is checked while the test waits
    browser_page = context.new_page()
    yield browser_page
    context.close()
    _remove_new_files(Path(settings.MEDIA_ROOT), keep=media_before)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("---- test server log ----\n" + asgi_server.log())


def _entries_under(root: Path) -> set[Path]:
    return set(root.rglob("*")) if root.exists() else set()


def _remove_new_files(root: Path, keep: set[Path]) -> None:
    """Remove what appeared under ``root`` since ``keep`` was listed: files, then the emptied new folders."""
    new = _entries_under(root) - keep
    for path in new:
        if not path.is_dir():
            path.unlink()
    for folder in sorted((path for path in new if path.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


@pytest.fixture
def screenshots(request):
    """Full-page screenshots kept as CI artefacts (tests/e2e/screenshots.py): ``screenshots.take(page, "name")``."""
    from tests.e2e.screenshots import for_test

    return for_test(request.node.name)


@pytest.fixture
def server_uploads(people, tiny_bert):
    """The owner's tiny model and 40-sentence corpus attached to the project, in the storage the server reads
    (the default folders: no per-test ``folders``, the server is another process)."""
    return attach_model_and_corpus(people["owner"], people["project"], tiny_bert)


@pytest.fixture
def bare_run(people):
    """A run with one queued step and one log line, made directly (nothing is sent to a worker)."""
    run = Run.objects.create(project=people["project"], created_by=people["owner"], request={})
    Step.objects.create(run=run, kind=StepKind.EXTRACT, title="Extract activations: tiny × toy", result_key="k",
                        queue="gpu", state="queued", done=0, total=280, unit="words")
    services.write_log(run.pk, ["Run created by olivia: 1 steps."])
    return run


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item (``item.rep_call``), so ``page`` can print the server's log
    when the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
