"""The read side of a run: what every workspace page and the results API read, never write.

``run_view`` holds the one cached :class:`RunView` (the run through the one permission path, its models, stores,
rankings, statistics and curves, results cached by content key); ``view_state`` the page state kept in the URL.
Each page has a presenter named ``<page>_presenter.py`` here (what the page shows, read through the RunView)
and its views in ``analysis/views/<page>.py``: explore (the Analysis view), neuron, ablation, manipulation,
downloads. The read side imports the step registry and ``steps.storage``, never the worker side (the step
runner, ``analysis.tasks``).
"""

from .run_view import (
    REMOVED_MODEL,
    RunModel,
    RunView,
    document_of,
    is_crossmodel,
    loaded,
    ranking_of,
    ranking_over,
    ready_result,
    run_in_project,
    run_view_for,
    statistics_of,
    store_of,
    stores_of,
)
from .view_state import POOL_LIMIT, ViewState

__all__ = ["POOL_LIMIT", "REMOVED_MODEL", "RunModel", "RunView", "ViewState", "document_of", "is_crossmodel",
           "loaded", "ranking_of", "ranking_over", "ready_result", "run_in_project", "run_view_for",
           "statistics_of", "store_of", "stores_of"]
