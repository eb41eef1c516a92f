"""The pipeline's data: a Run (one analysis request of a project), its Steps, its numbered LogLines, and the
Results they produce, keyed by content and shared by every run that asks the same question.

The Run row is the truth: clients read these rows, never Celery's result backend. Every change of state goes
through ``analysis.runs.services``.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"  # waits for the steps it needs, or for another run building its result
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_RUN_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})
FINISHED_STEP_STATES = frozenset({StepState.SUCCEEDED, StepState.FAILED, StepState.CANCELLED})


class StepKind(models.TextChoices):
    EXTRACT = "extract", "Activation extraction"
    STATISTICS = "statistics", "Neuron statistics"
    RANKING = "ranking", "Neuron ranking"
    PROBE_ABLATION = "probe_ablation", "Probe ablation"
    CROSSMODEL = "crossmodel", "Cross-model ranking"
    MODEL_ABLATION = "model_ablation", "Model-level ablation"


class ResultKind(models.TextChoices):
    STORE = "store", "Activation store"
    RANKING = "ranking", "Ranking"
    STATISTICS = "statistics", "Statistics"
    CURVE = "curve", "Curve"


class ResultState(models.TextChoices):
    BUILDING = "building", "Building"  # one step holds it and computes; others needing the same key wait
    READY = "ready", "Ready"


class Run(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    request = models.JSONField(help_text="The analysis request as validated by services.create_run.")
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.QUEUED, db_index=True)
    error = models.TextField(blank=True, help_text="One paragraph a person can act on; no traceback.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    log_seq = models.PositiveIntegerField(default=0, help_text="Number of the last log line written.")
    admitted = models.BooleanField(default=False, help_text="Holds one of its creator's concurrent-run slots "
                                   "(accounts: max_concurrent_runs); a run not admitted waits.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.project} ({self.state})"


class Step(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    kind = models.CharField(max_length=20, choices=StepKind.choices)
    title = models.CharField(max_length=300)
    params = models.JSONField(default=dict)
    needs = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="needed_by")
    result_key = models.CharField(max_length=64, db_index=True)
    queue = models.CharField(max_length=20)
    state = models.CharField(max_length=10, choices=StepState.choices, default=StepState.PENDING, db_index=True)
    reused = models.BooleanField(default=False, help_text="Finished at once: its result already existed.")
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    unit = models.CharField(max_length=30, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    compute_seconds = models.FloatField(default=0.0, help_text="Seconds this step held a worker (every attempt "
                                        "together); 0 for a reused result. What compute quotas count.")
    device = models.CharField(max_length=10, blank=True, help_text="Where it computed: cpu or cuda.")
    estimated_seconds = models.FloatField(default=0.0, help_text="Its cost when the run was created (compute-seconds, "
                                          "analysis/runs/estimates.py; 0 when reused): the compute quota counts it "
                                          "until the step finishes.")

    class Meta:
        ordering = ["run", "id"]
        indexes = [models.Index(fields=["queue", "state"], name="step_queue_state")]

    def __str__(self) -> str:
        return f"{self.title} ({self.state})"


class LogLine(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_lines")
    step = models.ForeignKey(Step, on_delete=models.SET_NULL, null=True, blank=True, related_name="log_lines")
    seq = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="unique_log_seq_per_run")]

    def __str__(self) -> str:
        return f"{self.seq}: {self.text[:80]}"


def results_root() -> Path:
    """The folder every worker shares, under which each ``Result.path`` lies."""
    return Path(settings.NEUROX_RESULTS_DIR)


class Result(models.Model):
    kind = models.CharField(max_length=20, choices=ResultKind.choices)
    key = models.CharField(max_length=64, unique=True, help_text="Content key: the same question, the same key.")
    state = models.CharField(max_length=10, choices=ResultState.choices, default=ResultState.BUILDING)
    builder = models.ForeignKey(Step, on_delete=models.SET_NULL, null=True, blank=True, related_name="building",
                                help_text="The step computing it while it is being built.")
    path = models.CharField(max_length=500, blank=True, help_text="Relative to NEUROX_RESULTS_DIR.")
    bytes = models.BigIntegerField(default=0)
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.key[:12]} ({self.state})"


class ManipulationRecipe(models.Model):
    """A named manipulation a member saved to re-run: a sentence, the neuron edits and where they act.
    ``recipe`` is the JSON that ``analysis.workspace.recipes.clean_recipe`` accepts (the one check); it is written
    through ``analysis.workspace.recipes`` (create_recipe, delete_recipe)."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="manipulation_recipes")
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="recipes",
                            help_text="The run whose statistics and corpus it was made with (labels, presets).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="manipulation_recipes")
    name = models.CharField(max_length=120)
    recipe = models.JSONField(help_text="{model, sentence, corpus_sentence, edits: [{neuron, operation, value}], "
                                        "positions: {mode: all | label | words, ...}}")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"recipe “{self.name}” of {self.project}"
