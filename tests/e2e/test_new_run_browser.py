"""The new-analysis form in a real browser against the real server: an editor picks the tiny model and corpus,
adds two rankings through the dialog (one with the mouse, one with the keyboard only), watches the estimate
follow, submits, and lands on the run page with a bar per step. The server computes eagerly (tests.settings),
so the run has finished by then and the page leads into its views. And a run page left open while its run
finishes: the links to the views appear without a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from analysis.models import Run
from tests.support.browser import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_an_editor_starts_an_analysis_with_two_rankings(page: Page, people, server_uploads, tmp_path):
    problems = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    sign_in(page, "eddie")
    page.goto(f"/projects/{people['project'].pk}/runs/")
    page.get_by_role("link", name="New analysis…").click()
    expect(page.get_by_role("heading", name="New analysis", exact=True)).to_be_visible()
    page.get_by_role("checkbox", name=re.compile("tiny bert")).check()
    page.get_by_label("Corpus").select_option(str(server_uploads["corpus"].pk))
    estimate = page.locator("#estimate")
    expect(estimate).to_contain_text("Neuron statistics: tiny bert: new")
    page.get_by_label("Neuron statistics").uncheck()
    expect(estimate).to_contain_text("Ask for at least one ranking")  # nothing left to compute

    # the first ranking with the mouse: LCA with λ1 and λ2, no confidence
    page.get_by_role("button", name="Add a ranking…").click()
    dialog = page.get_by_role("dialog", name="Add a ranking")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Scheme").select_option("lca")
    dialog.get_by_label("λ1 (sparsity)").fill("0.01")
    dialog.get_by_label("λ2 (weight decay)").fill("0.001")
    dialog.get_by_label("Confidence (bootstrap)").uncheck()
    dialog.get_by_role("button", name="Add this ranking").click()
    expect(dialog).to_be_hidden()
    rankings = page.locator("#ranking-list li")
    expect(rankings).to_have_count(1)
    expect(rankings.first).to_contain_text("λ1 0.01 · λ2 0.001 · no confidence")
    expect(page.get_by_role("button", name="Add a ranking…")).to_be_focused()  # focus comes back
    expect(estimate).to_contain_text("Ranking lca: tiny bert: new")

    # the second with the keyboard only: the λ fields of LCA disappear for probeless
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Scheme")).to_be_focused()
    dialog.get_by_label("Scheme").select_option("probeless")
    expect(dialog.get_by_label("λ1 (sparsity)")).to_be_hidden()
    page.keyboard.press("Tab")  # the confidence checkbox, checked
    page.keyboard.press("Tab")
    page.keyboard.type("4")
    page.keyboard.press("Enter")  # submits the dialog's form
    expect(rankings).to_have_count(2)
    expect(rankings.nth(1)).to_contain_text("Probeless (label mean differences) · confidence: 4 resamples")
    expect(estimate).to_contain_text("Ranking probeless, 4 resamples: tiny bert: new")
    expect(estimate.locator("#estimate-disk")).to_contain_text("KB")
    page.screenshot(path=str(tmp_path / "new-analysis.png"), full_page=True)

    page.get_by_role("button", name="Start the analysis").click()
    expect(page).to_have_url(re.compile(r"/projects/\d+/runs/\d+/$"))
    run = Run.objects.get()
    assert [r["method"] for r in run.request["rankings"]] == ["lca", "probeless"]
    assert run.request["rankings"][0]["options"] == {"l1": 0.01, "l2": 0.001}
    expect(page.locator("#run-steps progress")).to_have_count(3)  # extraction and the two rankings
    expect(page.get_by_role("link", name="Progress")).to_have_attribute("aria-current", "page")
    expect(page.locator("#run-finished")).to_contain_text("The run has finished")
    expect(page.locator("#open-analysis")).to_be_visible()
    page.screenshot(path=str(tmp_path / "run-page.png"), full_page=True)
    assert problems == []


def test_the_run_page_becomes_the_way_into_the_views_when_the_run_finishes(page: Page, people):
    """The page stays open while the run ends (rows written by this process; the consumer's database catch-up
    brings them): the bars fill, the time left goes, and the links to the views appear without a reload."""
    from datetime import timedelta

    from django.utils import timezone

    from analysis.runs import services
    from analysis.models import RunState, Step, StepKind

    run = Run.objects.create(project=people["project"], created_by=people["owner"], request={}, state="running")
    Step.objects.create(run=run, kind=StepKind.EXTRACT, title="Extract activations: tiny × toy", result_key="k",
                        queue="gpu", state="running", done=70, total=280, unit="words",
                        started_at=timezone.now() - timedelta(seconds=30))
    sign_in(page, "vera")
    page.goto(f"/projects/{run.project_id}/runs/{run.pk}/")
    expect(page.locator("#run-steps")).to_contain_text("70 / 280 words")
    expect(page.locator("#run-steps")).to_contain_text("min left")  # 70 words in 30 s: 210 more take 1.5 min
    expect(page.locator("#run-finished")).to_be_hidden()
    page.evaluate("window.__same_page = true")
    Step.objects.filter(run=run).update(state="succeeded", done=280)
    Run.objects.filter(pk=run.pk).update(state=RunState.SUCCEEDED, finished_at=timezone.now())
    services.write_log(run.pk, ["Run succeeded."])
    expect(page.locator("#run-finished")).to_contain_text("The run has finished")
    expect(page.locator("#run-steps")).to_contain_text("280 / 280 words")
    expect(page.locator("#run-steps")).not_to_contain_text("left")
    assert page.evaluate("window.__same_page") is True  # no reload happened
    page.locator("#open-analysis").click()
    expect(page).to_have_url(re.compile(rf"/runs/{run.pk}/analysis/$"))
