"""The Ablation view in a real browser against the real ASGI server, on a run computed for real (eager pipeline
on the tiny BERT): the chart draws its three lines, a point shows its value on keyboard focus, a toggle swaps
the chart through htmx and puts the state in the URL (a reload shows the same), and the PNG download is a PNG
drawn by ablation.js. Screenshots go to the test's folder."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from analysis.runs import services
from analysis.models import RunState
from tests.support.browser import sign_in
from tests.support.runs import request_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def ablation_run(people, server_uploads):
    run = services.create_run(people["owner"], people["project"], request_for(
        server_uploads, rankings=[], statistics=False,
        probe_ablation={"percents": [25, 50, 100], "random_seeds": 3, "modes": ["zero_out"]}))
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    return run


def test_the_ablation_chart_draws_shows_values_on_focus_toggles_and_saves_a_png(page: Page, ablation_run, tmp_path):
    sign_in(page, "vera")
    url = f"/projects/{ablation_run.project_id}/runs/{ablation_run.pk}/ablation/"
    page.goto(url)
    chart = page.locator("svg.chart")
    expect(chart).to_have_count(1)
    expect(chart.locator("g.chart-series")).to_have_count(3)
    expect(chart.locator("g.chart-point")).to_have_count(9)  # 3 lines × 3 points
    page.screenshot(path=str(tmp_path / "ablation.png"), full_page=True)

    first_point = chart.locator("g.chart-point").first
    tip = first_point.locator("g.chart-tip")
    expect(tip).to_be_hidden()
    first_point.focus()
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("% removed")
    page.screenshot(path=str(tmp_path / "ablation-focus.png"))

    page.get_by_role("checkbox", name="Bottom-ranked removed first").uncheck()
    expect(page.locator("svg.chart g.chart-series")).to_have_count(2)
    expect(page).to_have_url(f"{page.url.split('?')[0].split('/projects')[0]}{url}?series=top%2Crandom")
    page.reload()
    expect(page.locator("svg.chart g.chart-series")).to_have_count(2)
    expect(page.get_by_role("checkbox", name="Bottom-ranked removed first")).not_to_be_checked()

    with page.expect_download() as download:
        page.get_by_role("button", name="PNG of the chart").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith(".png") and saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert saved.stat().st_size > 5_000
