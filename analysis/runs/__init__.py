"""The pipeline's worker side: ``runner`` executes a claimed step of any kind (``analysis.steps``) and reports
back through ``analysis.services``."""
