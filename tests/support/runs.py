"""Run requests for the pipeline's tiny BERT and corpus (``attached``), and runs in a known state."""

from __future__ import annotations

from analysis.runs import services


def request_for(attached, **overrides):
    return {"models": [attached["model"].pk], "corpus": attached["corpus"].pk, "neuron_sets": ["hidden"],
            "rankings": [{"method": "probeless", "bootstrap": 0}, {"method": "anova", "bootstrap": 2}],
            "statistics": True, **overrides}


def two_runs_over_a_limit_of_one(people, attached, capture):
    """The owner may run one at a time and starts two runs (messages not sent): the second waits its turn."""
    owner = people["owner"]
    owner.max_concurrent_runs = 1
    owner.save()
    with capture(execute=False):
        first = services.create_run(owner, people["project"], request_for(attached))
        second = services.create_run(owner, people["project"], request_for(attached, seed=1))
    return first, second


def succeeded_steps(run, kind: str) -> list:
    """The run's succeeded steps of ``kind``, in step order (as the run's RunView reads them)."""
    from analysis.workspace import RunView

    return [step for step in RunView(run).steps if step.kind == kind]
