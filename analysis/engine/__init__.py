"""NeuroX analysis engine: the science as a plain Python package.

No Django imports anywhere under this package, and torch is imported lazily (inside functions), so the
engine can be used from a Celery task, a management command, a notebook or ``python -m analysis.engine``.
"""
