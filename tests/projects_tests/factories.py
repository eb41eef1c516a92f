"""Kept for the benchmarks (``benchmarks/bench_*.py`` import the factories from here); tests import them from
``tests.factories``."""

from tests.factories import MembershipFactory, ProjectFactory  # noqa: F401
