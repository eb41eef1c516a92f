"""The automated accessibility check of the browser tests: axe-core (vendored from npm in ``vendor/axe-core/``,
used only here) runs inside the page and every serious or critical violation fails the test, listed with its
rule, the elements it found and what to do about it.

    from tests.e2e.a11y import assert_no_serious_violations
    assert_no_serious_violations(page)            # the whole page as it is now
    assert_no_serious_violations(page, "#pool")   # only a part of it (e.g. after an htmx swap)
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from playwright.sync_api import Page

AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
FAILING_IMPACTS = ("serious", "critical")
# The WCAG 2.x A and AA rules plus axe's best practices (landmarks, headings, ...).
RULE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@cache
def _axe_source() -> str:
    return AXE_JS.read_text(encoding="utf-8")


def axe_violations(page: Page, context: str | None = None) -> list[dict]:
    """axe-core's violations on ``page`` (or inside the elements matching the CSS selector ``context``)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(content=_axe_source())  # a page's own script cannot load it: it is not served
    return page.evaluate(
        """([context, tags]) => axe.run(context ? document.querySelectorAll(context) : document,
                                        {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
                                  .then(result => result.violations)""",
        [context, RULE_TAGS],
    )


def describe(violations: list[dict]) -> str:
    """One paragraph per violation: impact, rule id, help text and link, then each element it found."""
    blocks = []
    for violation in violations:
        lines = [f"[{violation['impact']}] {violation['id']}: {violation['help']} ({violation['helpUrl']})"]
        for node in violation["nodes"]:
            target = " ".join(" > ".join(part) if isinstance(part, list) else part for part in node["target"])
            summary = (node.get("failureSummary") or "").replace("\n", " ").strip()
            lines.append(f"    {target}: {summary}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def assert_no_serious_violations(page: Page, context: str | None = None) -> None:
    """Fail listing every serious or critical axe-core violation on the page (minor and moderate ones pass)."""
    serious = [v for v in axe_violations(page, context) if v["impact"] in FAILING_IMPACTS]
    assert not serious, (f"{len(serious)} serious accessibility violation(s) on {page.url}:\n"
                         + describe(serious))
