"""The fair order of a queue (analysis.runs.fair_share): people take turns, the example projects come last, and
a worker's message claims the fairest queued step, not the one it names."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from analysis.models import Run, Step, StepKind, StepState
from analysis.runs import fair_share, services
from projects.models import Project

pytestmark = pytest.mark.django_db

START = timezone.now() - timedelta(hours=1)


@pytest.fixture
def person(make_user):
    """``person("a")``: a user with a project and a run in it (the same ones on each call with that name)."""
    made = {}

    def make(name, example=False):
        if (name, example) not in made:
            user = made.get(name) or make_user(username=name)
            made[name] = user
            project = Project.objects.create(name=f"{name}'s {'example' if example else 'project'}", owner=user,
                                             is_example=example)
            made[(name, example)] = Run.objects.create(project=project, created_by=user, request={})
        return made[(name, example)]

    return make


def queue(run, count=1, state=StepState.QUEUED, queue="cpu", **fields):
    """Add ``count`` steps to ``run``, queued one second after each other (after every step queued before)."""
    made = []
    for _ in range(count):
        made.append(Step.objects.create(
            run=run, kind=StepKind.RANKING, title=f"step of {run.created_by.username}", result_key="k",
            queue=queue, state=state, queued_at=START + timedelta(seconds=Step.objects.count()), **fields))
    return made


def owners(step_ids):
    names = dict(Step.objects.values_list("pk", "run__created_by__username"))
    return [names[pk] for pk in step_ids]


def test_one_new_step_goes_before_fifty_queued_by_someone_else(person):
    queue(person("a"), 1, state=StepState.RUNNING, started_at=START)
    a_steps = queue(person("a"), 50)
    (b_step,) = queue(person("b"), 1)
    assert fair_share.turn_order("cpu")[0] == b_step.pk
    assert fair_share.queue_positions("cpu")[b_step.pk] == 1
    # a worker's message for A's first queued step brings a turn, and the turn is B's
    claimed = services.claim_step(a_steps[0].pk, "cpu@test")
    assert claimed.pk == b_step.pk and claimed.state == StepState.RUNNING
    assert Step.objects.get(pk=a_steps[0].pk).state == StepState.QUEUED


def test_people_take_turns_whatever_the_order_they_queued_in(person):
    queue(person("a"), 3)
    queue(person("b"), 3)
    queue(person("c"), 1)
    assert owners(fair_share.turn_order("cpu")) == ["a", "b", "c", "a", "b", "a", "b"]


def test_first_come_first_served_when_the_operator_turns_fair_share_off(person, settings):
    settings.NEUROX_FAIR_SHARE = False
    queue(person("a"), 3)
    queue(person("b"), 1)
    assert owners(fair_share.turn_order("cpu")) == ["a", "a", "a", "b"]


def test_whoever_was_served_longest_ago_goes_first(person):
    queue(person("a"), 1, state=StepState.SUCCEEDED, started_at=timezone.now() - timedelta(minutes=1))
    queue(person("b"), 1, state=StepState.SUCCEEDED, started_at=timezone.now() - timedelta(days=1))
    queue(person("a"), 2)
    queue(person("b"), 2)
    assert owners(fair_share.turn_order("cpu")) == ["b", "a", "b", "a"]


def test_example_projects_wait_until_no_one_elses_step_is_queued(person):
    examples = queue(person("examples", example=True), 4)
    mine = queue(person("newcomer"), 2)
    order = fair_share.turn_order("cpu")
    assert order == [step.pk for step in mine + examples]  # the examples in the order they were queued
    # the newcomer's own copy of an example counts as an example too: after every step of people's projects
    (own_example,) = queue(person("newcomer", example=True), 1)
    (later,) = queue(person("someone"), 1)
    order = fair_share.turn_order("cpu")
    assert set(order[:3]) == {mine[0].pk, mine[1].pk, later.pk} and own_example.pk in order[3:]


def test_a_message_runs_its_own_step_when_it_is_its_persons_turn(person):
    first, named = queue(person("a"), 2)
    queue(person("b"), 1, state=StepState.RUNNING, started_at=START)
    queue(person("b"), 1)
    assert fair_share.turn_order("cpu", named=named.pk)[0] == named.pk
    assert services.claim_step(named.pk, "cpu@test").pk == named.pk


def test_queues_are_separate_and_only_queued_steps_count(person):
    queue(person("a"), 2, queue="gpu")
    (cancelled,) = queue(person("b"), 1, state=StepState.CANCELLED)
    (mine,) = queue(person("b"), 1)
    assert fair_share.turn_order("cpu") == [mine.pk]
    assert owners(fair_share.turn_order("gpu")) == ["a", "a"]
    assert services.claim_step(cancelled.pk, "cpu@test").pk == mine.pk  # a stale message still brings a turn
    assert services.claim_step(cancelled.pk, "cpu@test") is None  # nothing queued on cpu any more
