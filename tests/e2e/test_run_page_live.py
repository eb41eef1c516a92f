"""The plain run page in a real browser against the real ASGI server: the htmx websocket extension shows new
log lines in order and moves the step bars without a reload, and an editor's Cancel button (hx-post with the
CSRF header) cancels the run. The lines are written by this test process, whose wake-ups never reach the
server's channel layer (its own, in memory): the consumer's database catch-up alone brings them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from analysis.runs import services
from analysis.models import RunState, Step
from tests.support.browser import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def run_url(run) -> str:
    return f"/projects/{run.project_id}/runs/{run.pk}/"


def test_a_viewer_watches_lines_and_progress_arrive(page: Page, bare_run):
    sign_in(page, "vera")
    page.goto(run_url(bare_run))
    log = page.locator("#run-log li")
    expect(log).to_have_count(1)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    for batch in range(3):
        services.write_log(bare_run.pk, [f"batch {batch} line {i}" for i in range(4)])
    expect(log).to_have_count(13)
    assert log.all_inner_texts()[1:] == [f"batch {b} line {i}" for b in range(3) for i in range(4)]
    Step.objects.filter(run=bare_run).update(state="running", done=140)
    expect(page.locator("#run-steps")).to_contain_text("140 / 280 words")


def test_an_editor_cancels_from_the_page(page: Page, bare_run):
    sign_in(page, "eddie")
    page.goto(run_url(bare_run))
    page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_role("button", name="Retry run")).to_be_visible()
    bare_run.refresh_from_db()
    assert bare_run.state == RunState.CANCELLED
    expect(page.locator("#run-log")).to_contain_text("Run cancelled by eddie.")


def test_a_dropped_socket_resumes_from_the_pages_last_line(page: Page, bare_run):
    """The socket drops (a server restart: close code 1012) and 250 lines are written before htmx reconnects:
    the reconnect says the page's last line (``static/js/run_log.js``), so the page ends with every line once,
    in order; a snapshot would have replaced the log with the last 200."""
    sockets = []

    def through(route):
        sockets.append(route)
        route.connect_to_server()

    page.route_web_socket(re.compile(r"/ws/runs/\d+/"), through)
    sign_in(page, "vera")
    page.goto(run_url(bare_run))
    log = page.locator("#run-log li")
    services.write_log(bare_run.pk, [f"before {i}" for i in range(2, 6)])
    expect(log).to_have_count(5)
    assert "after=1" in sockets[0].url  # the page was rendered with line 1
    sockets[0].close(code=1012, reason="service restart")
    services.write_log(bare_run.pk, [f"while away {i}" for i in range(6, 256)])
    expect(log).to_have_count(255)
    assert len(sockets) == 2 and "after=5" in sockets[1].url
    assert page.locator("#run-log li").evaluate_all("lines => lines.map(line => line.value)") == list(range(1, 256))
