"""Fair share against first come, first served (issue #18): 3 simulated people submit 10 runs of 3 steps each,
one after the other (A's ten first, then B's, then C's), to one worker; the worker takes turns through the real
claim (``services.claim_step``, its message naming the oldest queued step, as a broker delivers them) and each
step lasts one "step time". Printed per person: how many steps ran before their first one, and the most steps of
one other person that ran between two of theirs while they were waiting (fair: at most 1).

    .venv/bin/python -m benchmarks.bench_fair_share [--people 3] [--runs 10] [--steps 3]

Self-contained: a fresh SQLite database in a temporary folder (no server needed); no model is computed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter, defaultdict
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neurox_site.settings")
for name in ("DATABASE_URL", "REDIS_URL"):
    os.environ.pop(name, None)
os.environ["NEUROX_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-fair-share-")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import User  # noqa: E402
from analysis.models import Result, Run, Step, StepKind, StepState  # noqa: E402
from analysis.runs import services  # noqa: E402
from projects.models import Project  # noqa: E402


def submit(people: int, runs: int, steps: int) -> list[str]:
    """Each person's runs, all queued: person 0's first, then person 1's, … (their names, in that order)."""
    Step.objects.all().delete()
    Result.objects.all().delete()
    Run.objects.all().delete()
    names = [chr(ord("A") + i) for i in range(people)]
    start = timezone.now() - timedelta(hours=1)
    queued = 0
    for name in names:
        user = User.objects.get_or_create(username=name, defaults={"email": f"{name}@example.org"})[0]
        project = Project.objects.get_or_create(name=f"{name}'s project", owner=user)[0]
        for _ in range(runs):
            run = Run.objects.create(project=project, created_by=user, request={})
            for _ in range(steps):
                queued += 1
                Step.objects.create(run=run, kind=StepKind.RANKING, title=name, result_key=f"{queued:064d}",
                                    queue="cpu", state=StepState.QUEUED, queued_at=start + timedelta(seconds=queued))
    return names


def work(names: list[str]) -> list[str]:
    """One worker until nothing is queued: each message names the oldest queued step; whose step ran, in order."""
    ran = []
    while True:
        oldest = Step.objects.filter(state=StepState.QUEUED).order_by("queued_at", "pk").first()
        if oldest is None:
            return ran
        step = services.claim_step(oldest.pk, "cpu@bench")
        Step.objects.filter(pk=step.pk).update(state=StepState.SUCCEEDED, finished_at=timezone.now())
        ran.append(step.title)


def measure(order: list[str], names: list[str]) -> dict[str, tuple[int, int]]:
    """Per person: (steps before their first, most steps of one other person between two of theirs)."""
    found = {}
    for name in names:
        mine = [i for i, owner in enumerate(order) if owner == name]
        between = 0
        for before, after in zip([-1, *mine], mine):
            counts = Counter(owner for owner in order[before + 1:after] if owner != name)
            between = max(between, max(counts.values(), default=0))
        found[name] = (mine[0], between)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3, help="steps per run")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    results = defaultdict(dict)
    for label, fair in (("fair share", True), ("first come, first served", False)):
        settings.NEUROX_FAIR_SHARE = fair
        names = submit(args.people, args.runs, args.steps)
        for name, figures in measure(work(names), names).items():
            results[name][label] = figures
    print(f"{args.people} people × {args.runs} runs × {args.steps} steps, submitted A first; one worker\n")
    print(f"{'person':<8}{'steps before their first':>28}{'':>6}{'most of one other between two of theirs':>44}")
    print(f"{'':<8}{'fair':>14}{'FCFS':>14}{'':>6}{'fair':>22}{'FCFS':>22}")
    for name, row in results.items():
        (fair_first, fair_between), (fifo_first, fifo_between) = row["fair share"], row["first come, first served"]
        print(f"{name:<8}{fair_first:>14}{fifo_first:>14}{'':>6}{fair_between:>22}{fifo_between:>22}")
    worst = max(row["fair share"][1] for row in results.values())
    print(f"\nfair: no one waits for more than {worst} step(s) of another person per turn")
    sys.exit(0 if worst <= 1 else 1)


if __name__ == "__main__":
    main()
