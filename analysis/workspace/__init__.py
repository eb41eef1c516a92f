"""The read side of a run: what every workspace page and the results API read.

``run_view`` holds the one cached :class:`RunView` (the run through the one permission path, its models, stores,
rankings, statistics and curves, results cached by content key); ``view_state`` the page state kept in the URL.
Each page is a package with its ``presenter`` (what the page shows, read through the RunView) and its
``views``: ``run`` (the run page and its live log), ``explore`` (the Analysis view), ``neuron``, ``ablation``,
``manipulation``, ``downloads``. Beside them: ``charts`` (SVG), ``results`` and ``api`` (results for clients),
``recipes`` (a manipulation recipe's rule and its writes). The read side imports the pipeline's selectors and
services (``analysis.runs``), the step registry and ``steps.storage``, never the other way round.
"""

from analysis.workspace.run_view import (
    document_of, is_crossmodel, loaded, ranking_of, ranking_over, ready_result, REMOVED_MODEL, run_in_project,
    run_view_for, RunModel, RunView, statistics_of, store_of, stores_of,
)
from analysis.workspace.view_state import POOL_LIMIT, ViewState

__all__ = ["POOL_LIMIT", "REMOVED_MODEL", "RunModel", "RunView", "ViewState", "document_of", "is_crossmodel",
           "loaded", "ranking_of", "ranking_over", "ready_result", "run_in_project", "run_view_for",
           "statistics_of", "store_of", "stores_of"]
