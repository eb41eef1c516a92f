"""The Manipulation view in a real browser (system Chromium) against the real ASGI server: moving a slider with
the keyboard changes the output without a reload, the URL follows (a reload shows the same state), and a saved
recipe comes back through its URL; an answer that arrives after a newer one (held back with page.route) is
dropped. The run is computed in this process (eager pipeline) into the data folder the
server shares; the server runs the realtime task in-process too (tests.settings is eager), the same code a
realtime worker runs."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from analysis.runs import services
from tests.support.browser import sign_in
from tests.support.runs import request_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NEURONS = [f"L2:{u}" for u in range(8)]


@pytest.fixture
def browser_run(people, server_uploads):
    run = services.create_run(people["owner"], people["project"], request_for(
        server_uploads, rankings=[{"method": "probeless", "bootstrap": 0}]))
    run.refresh_from_db()
    assert run.state == "succeeded", run.error
    return run


def test_a_slider_move_changes_the_output_and_the_url_keeps_it(page: Page, browser_run, tmp_path):
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, "eddie")
    scales = "&".join(f"op.{n}=scale&v.{n}=1" for n in NEURONS)
    page.goto(f"/projects/{browser_run.project_id}/runs/{browser_run.pk}/manipulation/?pools={','.join(NEURONS)}"
              f"&{scales}&sentence=the+cat+sat+on+the+[MASK]+.")
    output = page.locator("#manip-output")
    # the first answer loads the model in the server process (eager realtime path) on a loaded machine
    expect(output).to_contain_text("No change in the predicted words or their order", timeout=60_000)
    assert errors == []
    for neuron in NEURONS:  # every slider to the top of its range (a factor of 4), with the keyboard
        page.get_by_label(re.compile(rf"^Value of {neuron} ")).press("End")
    expect(output).to_contain_text("The output changed")
    expect(output.locator("mark.manip-changed").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "manipulation.png"), full_page=True)
    assert "v.L2%3A0=4" in page.url or "v.L2:0=4" in page.url

    page.reload()  # the shared URL: the same sliders, the same output
    expect(page.get_by_label(re.compile(r"^Value of L2:0 "))).to_have_value("4")
    expect(output).to_contain_text("The output changed")

    page.get_by_label("Save this manipulation as").fill("all up")
    page.get_by_role("button", name="Save recipe").click()
    expect(page.get_by_role("status").filter(has_text="Showing the recipe “all up”")).to_be_visible()
    expect(page.get_by_label(re.compile(r"^Value of L2:7 "))).to_have_value("4")
    expect(output).to_contain_text("The output changed")


def test_an_answer_older_than_the_one_shown_is_dropped(page: Page, browser_run):
    sign_in(page, "vera")
    page.goto(f"/projects/{browser_run.project_id}/runs/{browser_run.pk}/manipulation/?pools=L2:0&op.L2:0=scale"
              "&v.L2:0=1&sentence=the+cat+sat+on+the+[MASK]+.")
    result = page.locator("#manip-output .manip-result")
    expect(result).to_have_attribute("data-seq", "1", timeout=60_000)
    held = []

    def hold_the_second(route):  # the network delays the answer to the second request
        if "seq=2" in route.request.url:
            held.append(route)
        else:
            route.continue_()

    page.route("**/manipulation/output/**", hold_the_second)
    slider = page.get_by_label(re.compile(r"^Value of L2:0 "))
    slider.press("ArrowRight")
    page.wait_for_timeout(500)  # past the 150 ms debounce: request 2 is sent (and held)
    assert len(held) == 1
    slider.press("ArrowRight")
    expect(result).to_have_attribute("data-seq", "3")
    held[0].continue_()  # the older answer arrives last
    page.wait_for_timeout(1500)
    expect(result).to_have_attribute("data-seq", "3")
    expect(page.locator("#manip-output")).to_have_attribute("aria-busy", "false")
