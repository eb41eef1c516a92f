"""The neuron page in a real browser against the real ASGI server: the correlations partial arrives by htmx
after the page has drawn, a histogram bar shows its count when it takes keyboard focus, and the downloads page
serves a CSV. The run is computed in this process (eager) into the results folder the server also reads."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from analysis.runs import services
from tests.support.browser import sign_in
from tests.support.runs import request_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def folders(settings, tmp_path):
    """Uploads in a fresh folder; results where the server process reads them (its settings are ours)."""
    media = tmp_path / "media"
    media.mkdir()
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(media), "base_url": "/media/"}}}
    settings.MEDIA_ROOT = str(media)
    return {"media": media, "results": settings.NEUROX_RESULTS_DIR}


@pytest.fixture
def computed_run(people, attached):
    run = services.create_run(people["owner"], people["project"], request_for(attached))
    run.refresh_from_db()
    assert run.state == "succeeded", run.error
    return run


def test_a_viewer_reads_a_neuron_page_with_the_keyboard(page: Page, people, computed_run, tmp_path):
    sign_in(page, "vera")
    base = f"/projects/{computed_run.project_id}/runs/{computed_run.pk}"
    page.goto(f"{base}/neurons/L1:3/?pools=L0:1")
    expect(page.get_by_role("heading", name="Neuron L1:3")).to_be_visible()
    expect(page.get_by_text("Fires on verbs (VERB)")).to_be_visible()
    # the partial replaces its loading line
    expect(page.get_by_role("heading", name="Most correlated neurons in tiny bert")).to_be_visible()
    expect(page.get_by_role("heading", name="Correlation with word position")).to_be_visible()
    # a histogram bar: focus shows its count (hidden until then)
    bar = page.locator(".bar-group").nth(0)
    value = bar.locator(".bar-value")
    assert value.evaluate("e => getComputedStyle(e).visibility") == "hidden"
    bar.focus()
    assert value.evaluate("e => getComputedStyle(e).visibility") == "visible"
    assert bar.get_attribute("aria-label").endswith(f"{value.text_content()} words")
    # back to Analysis keeps the pool
    href = page.get_by_role("link", name="← Back to Analysis").get_attribute("href")
    assert href.endswith("/analysis/?pools=L0%3A1")
    page.screenshot(path=str(tmp_path / "neuron-page.png"), full_page=True)
    page.goto(f"{base}/downloads/")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV", exact=True).first.click()
    assert download.value.suggested_filename.startswith(f"run{computed_run.pk}-ranking-")
    print(f"screenshot: {tmp_path / 'neuron-page.png'}")
