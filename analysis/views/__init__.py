"""HTML pages of the analysis app, one module per page family: ``runs`` (run list, the run page, cancel and
retry), and the workspace of a finished run (``explore``: the Analysis view; ``neuron``: a neuron's page;
``ablation``; ``manipulation``), with ``new_run`` for the new-analysis form and ``downloads`` for files.

Every view finds its run through ``analysis.workspace.run_in_project`` (one permission path) and reads results
through ``analysis.workspace``, never the store or the results folder directly.
"""
