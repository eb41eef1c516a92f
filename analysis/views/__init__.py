"""HTML pages of the analysis app, one module per page family: ``runs`` (run list, the run page, cancel and
retry), and the workspace of a finished run (``explore``: the Analysis view; ``neuron``: a neuron's page;
``ablation``; ``manipulation``), with ``new_run`` for the new-analysis form and ``downloads`` for files.

Every workspace view finds its run through ``analysis.workspace.run_view_for`` (the one permission path) and
asks its page's presenter (``analysis.workspace.<page>_presenter``), which reads results through the run's
``RunView``, never the store or the results folder directly.
"""
