"""Kept for ``benchmarks/bench_ablation.py``, which imports the tiny models from here; tests import
``tests.support.tiny_models``."""

from tests.support.tiny_models import TOY_SENTENCES, make_tiny_model  # noqa: F401
