"""Analysis runs (jobs), their logs and results; the science itself is in analysis.engine."""
