"""axe-core over the pages that exist without a computed run, in the real browser against the real server: no
serious or critical violation on the sign-in page, home, the projects list, a project, its runs, the library,
a run's page and every workspace tab. (The workspace with real results is checked by the journey test.)
Each page is also saved as a screenshot (CI artefact)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page

from tests.support.browser import sign_in

from .a11y import FAILING_IMPACTS, assert_no_serious_violations, axe_violations, describe

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORKSPACE_TABS = ["run-detail", "run-analysis", "run-ablation", "run-manipulation", "run-downloads"]


def test_sign_in_page_has_no_serious_violations(page: Page, screenshots):
    page.goto("/accounts/login/")
    screenshots.take(page, "sign-in")
    assert_no_serious_violations(page)


def test_signed_in_pages_have_no_serious_violations(page: Page, people, bare_run, screenshots):
    project = people["project"]
    sign_in(page, "olivia")
    pages = {
        "home": "/",
        "projects": reverse("projects:list"),
        "project": project.get_absolute_url(),
        "library": reverse("projects:library"),
        "runs": reverse("analysis:run-list", args=[project.pk]),
        **{name: reverse(f"analysis:{name}", args=[project.pk, bare_run.pk]) for name in WORKSPACE_TABS},
    }
    found = {}
    for name, url in pages.items():
        page.goto(url)
        screenshots.take(page, name)
        serious = [v for v in axe_violations(page) if v["impact"] in FAILING_IMPACTS]
        if serious:
            found[name] = describe(serious)
    assert not found, "serious accessibility violations:\n" + "\n".join(
        f"== {name} ({pages[name]})\n{text}" for name, text in found.items())


def test_the_check_fails_on_a_serious_violation(page: Page):
    """The helper itself: an image without alt text and an unlabelled field fail it, naming rule and element."""
    page.set_content('<html lang="en"><body><main><h1>Bad</h1><img src="x.png">'
                     '<input type="text" id="nameless"></main></body></html>')
    with pytest.raises(AssertionError) as failure:
        assert_no_serious_violations(page)
    message = str(failure.value)
    assert "image-alt" in message and "img" in message
    assert "label" in message and "#nameless" in message
