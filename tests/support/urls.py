"""URLs of a run's pages."""

from __future__ import annotations


def run_page_url(run, tail: str = "") -> str:
    """The run's page, or one of its views with ``tail`` (``"analysis/"``, ``"neurons/L1:3/"``, ...)."""
    return f"/projects/{run.project_id}/runs/{run.pk}/{tail}"
