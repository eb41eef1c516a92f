"""Which queued step a worker takes next: people take turns, the example projects come last.

Every queued step still has its own broker message, so a queue holds as many messages as it has queued steps
(the reaper's count of lost messages relies on it), but a message is only a turn: the worker that receives it
takes the step of that queue that is fairest to run now (:func:`turn_order`), not necessarily the one the message
names. In order:

1. steps of people's own projects before steps of the example projects (these run at the lowest priority);
2. the person with the fewest steps running on this queue now;
3. the person served longest ago on this queue (whose last step there started earliest; never served: first);
4. one person's steps in the order they were queued.

So with one worker a person's new step waits for the step running now and for at most one step of each other
person who is waiting too, however many steps those people have queued. The same order gives each queued step
its queue position (how many steps are really ahead of it). ``NEUROX_FAIR_SHARE=false`` turns it into first
come, first served.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict, deque
from itertools import islice
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from analysis.models import Step, StepState

NEVER = float("-inf")  # "last served" of a person never served on the queue
SERVED_WINDOW = timedelta(days=1)  # a person last served before this counts as never served
SIMULATED = 1e12  # "last served" of a turn the simulation gives: later than any real start (a POSIX timestamp)


def _waiting(queue: str) -> list[tuple[int, int, bool]]:
    """(step id, its run's creator, whether its project is an example) of the queue's queued steps, oldest first."""
    return list(Step.objects.filter(queue=queue, state=StepState.QUEUED).order_by("queued_at", "pk")
                .values_list("pk", "run__created_by_id", "run__project__is_example"))


def _served(queue: str, people: set[int]) -> tuple[Counter, dict[int, float]]:
    """Per person: their steps running on ``queue`` now, and when their last step there started (a timestamp;
    only starts within ``SERVED_WINDOW`` count, so a claim reads recent rows, not the queue's whole history)."""
    running = Counter(Step.objects.filter(queue=queue, state=StepState.RUNNING, run__created_by_id__in=people)
                      .values_list("run__created_by_id", flat=True))
    last: dict[int, datetime] = dict(
        Step.objects.filter(queue=queue, run__created_by_id__in=people,
                            started_at__gte=timezone.now() - SERVED_WINDOW)
        .values("run__created_by_id").annotate(last=Max("started_at")).values_list("run__created_by_id", "last"))
    return running, {person: started.timestamp() for person, started in last.items()}


def turn_order(queue: str, named: int | None = None) -> list[int]:
    """The queue's queued steps (ids) in the order its workers take them, if nothing else arrives meanwhile.
    ``named``: the step a message names goes first among its person's steps (when it is their turn, the message's
    own step runs).

    A simulation of the rules above: each turn goes to the line (one person's own steps, or their example steps)
    with the smallest (example, running now, last served, first queued); the step taken then counts as that
    person's, running and served last."""
    waiting = _waiting(queue)
    if not settings.NEUROX_FAIR_SHARE:  # first come, first served (the operator's switch; benchmarks compare)
        return [step_id for step_id, _, _ in waiting]
    lines: dict[tuple[bool, int], deque] = defaultdict(deque)
    arrival: dict[int, int] = {}
    for index, (step_id, person, example) in enumerate(waiting):
        line = lines[(bool(example), person)]
        line.appendleft(step_id) if step_id == named else line.append(step_id)
        arrival[step_id] = index
    running, last = _served(queue, {person for _, person, _ in waiting}) if waiting else (Counter(), {})

    def key(line):
        example, person = line
        first_queued = min(arrival[step_id] for step_id in islice(lines[line], 2))  # ``named`` may lead it
        return example, running[person], last.get(person, NEVER), first_queued

    heap = [(key(line), line) for line in lines]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        stored, line = heapq.heappop(heap)
        if stored != key(line):  # its person was served from their other line since: the key only grew
            heapq.heappush(heap, (key(line), line))
            continue
        order.append(lines[line].popleft())
        running[line[1]] += 1
        last[line[1]] = SIMULATED + len(order)  # served after every real start, in turn order
        if lines[line]:
            heapq.heappush(heap, (key(line), line))
    return order


def queue_positions(queue: str) -> dict[int, int]:
    """Each queued step of ``queue`` → its position (1: the next one a worker takes)."""
    return {step_id: position for position, step_id in enumerate(turn_order(queue), start=1)}
