"""The browser tests' Chromium and what they do on a page: sign in through the form, Tab to an element."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.factories import DEFAULT_PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# A laptop screen: the page must be usable at this size.
VIEWPORT = {"width": 1366, "height": 900}


def sign_in(page: Page, username: str) -> None:
    """Sign ``username`` in through the sign-in form (password: ``DEFAULT_PASSWORD``)."""
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name=f"Sign out {username}")).to_be_visible()


def tab_to(page: Page, element_id: str, limit: int = 40) -> int:
    """Press Tab until the element with ``element_id`` has the focus; fails after ``limit`` presses, listing
    where the focus went. Returns the number of presses."""
    visited = []
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        focused_id, description = page.evaluate(
            """() => {
                const e = document.activeElement;
                if (!e) return [null, null];
                return [e.id, e.id || e.getAttribute('name') || e.textContent.trim().slice(0, 30) || e.tagName];
            }"""
        )
        if focused_id == element_id:
            return presses
        visited.append(description)
    pytest.fail(f"#{element_id} not reached with {limit} Tab presses; the focus went to {visited}")
