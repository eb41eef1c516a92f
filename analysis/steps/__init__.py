"""The kinds of step a run is made of, one module each (extract, statistics, ranking, probe_ablation,
crossmodel, model_ablation), registered in :mod:`.registry`; a site adds its own kinds by naming their modules in
the setting ``NEUROX_STEP_MODULES``. ``queues`` sends a step to its workers, ``analysis.runs.runner`` executes
any of them there."""

from importlib import import_module

from django.conf import settings

from analysis.steps import crossmodel, extract, model_ablation, probe_ablation, ranking, statistics
from analysis.steps.registry import CPU, GPU, Download, StepType, register, step_type, step_types, unregister

for _module in getattr(settings, "NEUROX_STEP_MODULES", ()):
    import_module(_module)

__all__ = ["CPU", "GPU", "Download", "StepType", "register", "step_type", "step_types", "unregister"]
