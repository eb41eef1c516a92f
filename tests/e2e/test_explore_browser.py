"""The Analysis view in Debian's Chromium against the real ASGI server: add three neurons to the pool (htmx
swaps the workbench and pushes the shareable URL), see their rows in the activation map, move through the map's
words with the keyboard (the value shows on focus), and reopen the pushed URL to find the same view.

The run is computed in this process (eager pipeline on the tiny BERT) and its results and uploads copied to the
server's folders (the server is another process, with the default folders); the server answers typed text with
the realtime task in its own process (eager, as the test settings say)."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from analysis.runs import services
from analysis.models import StepKind
from tests.support.browser import sign_in
from tests.support.runs import request_for

from .a11y import assert_no_serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def server_run(people, attached, django_capture_on_commit_callbacks):
    """A finished run whose result files (and uploaded model, for typed text) are where the server looks."""
    from neurox_site import settings as site_settings

    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    run.refresh_from_db()
    copies = [(Path(settings.NEUROX_RESULTS_DIR), Path(site_settings.NEUROX_RESULTS_DIR)),
              (Path(settings.MEDIA_ROOT), Path(site_settings.MEDIA_ROOT))]
    added = []
    for source, target in copies:
        added += [target / p.relative_to(source) for p in source.iterdir() if not (target / p.name).exists()]
        shutil.copytree(source, target, dirs_exist_ok=True)
    yield run
    for path in added:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def test_pool_map_keyboard_and_shared_url(page: Page, server_run, tmp_path):
    anova = server_run.steps.get(kind=StepKind.RANKING, params__method="anova")
    sign_in(page, "vera")
    page.goto(f"/projects/{server_run.project_id}/runs/{server_run.pk}/analysis/?ranking={anova.pk}")
    expect(page.get_by_role("heading", name="Rankings")).to_be_visible()
    expect(page.locator("#pool")).to_contain_text("The pool is empty")
    adds = page.locator("#neuron-list a", has_text="Add")
    chosen = []
    for i in range(3):
        link = adds.first
        chosen.append(link.locator(".visually-hidden").inner_text().split()[0])
        link.click()
        expect(page.locator("#pool")).to_contain_text(f"Pool ({i + 1} of at most 50)")
    pools = parse_qs(urlsplit(page.url).query)["pools"][0].split(",")
    assert pools == chosen
    first_map = page.locator(".map-sentence").first
    expect(first_map.locator(".map-row")).to_have_count(3)
    page.screenshot(path=str(tmp_path / "analysis.png"), full_page=True)
    assert_no_serious_violations(page)

    first_word = first_map.locator(".map-word").first
    first_word.focus()
    page.keyboard.press("ArrowRight")
    focused = page.evaluate("""() => { const e = document.activeElement;
        return {label: e.getAttribute('aria-label'), title: e.title,
                shown: getComputedStyle(e, '::after').content}; }""")
    second = first_map.locator(".map-row").first.locator(".map-word").nth(1)
    assert focused["label"] == second.get_attribute("aria-label")
    assert focused["shown"] == f'"{focused["title"]}"'  # the caption shown on focus: "L0:15 = 0.531"
    assert focused["label"].endswith(focused["title"])  # … and in the accessible name, after the word
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == \
        first_map.locator(".map-row").nth(1).locator(".map-word").nth(1).get_attribute("aria-label")

    shared = page.url
    page.goto(shared)
    expect(page.locator("#pool")).to_contain_text("Pool (3 of at most 50)")
    expect(page.locator(".map-sentence").first.locator(".map-row")).to_have_count(3)
    page.locator("#pool a", has_text="Remove").first.click()
    expect(page.locator("#pool")).to_contain_text("Pool (2 of at most 50)")
    assert parse_qs(urlsplit(page.url).query)["pools"][0].split(",") == chosen[1:]
    expect(page.locator("#pool-title")).to_be_focused()  # the removed control is gone: focus is not lost
    ablation_tab = page.get_by_role("navigation", name="Views of this run").get_by_role("link", name="Ablation")
    assert parse_qs(urlsplit(ablation_tab.get_attribute("href")).query)["pools"][0].split(",") == chosen[1:]

    # typed text (the server runs the realtime task in its own process: eager, as in the test settings)
    page.get_by_label("A sentence (words separated by spaces)").fill("the dog sat in the park .")
    page.get_by_role("button", name="Run the model").click()
    expect(page.locator("#typed-result")).to_contain_text("Most active neurons per word", timeout=90_000)  # cold model
    # the form was rendered with the pool of three; it sends the pool as the URL has it now (two)
    expect(page.locator("#typed-result .map-row")).to_have_count(2)
    assert parse_qs(urlsplit(page.url).query)["text"] == ["the dog sat in the park ."]
    assert_no_serious_violations(page)
    page.screenshot(path=str(tmp_path / "typed.png"), full_page=True)

    # by keyboard: Enter on a neuron's "Add" keeps focus on that neuron's toggle, now "Remove"
    toggle = page.locator("#neuron-list a", has_text="Add").first
    label = toggle.locator(".visually-hidden").inner_text().split()[0]
    toggle.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#pool")).to_contain_text("Pool (3 of at most 50)")
    expect(page.locator(f"#neuron-list a:has-text('Remove {label} from the pool')")).to_be_focused()
