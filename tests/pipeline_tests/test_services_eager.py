"""The pipeline's services with tasks run in-process (eager): request validation, steps and their keys, reuse,
dispatch order, claims, cancel, retry, failure and the reaper. Real worker processes: test_real_workers.py."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from analysis.runs import services
from analysis.models import LogLine, Result, ResultState, Run, RunState, Step, StepKind, StepState

from tests.support.runs import request_for, two_runs_over_a_limit_of_one


def start(people, attached, capture, **overrides):
    with capture(execute=True):
        return services.create_run(people["owner"], people["project"], request_for(attached, **overrides))


def test_a_full_run_succeeds_with_every_result_present(people, attached, folders,
                                                       django_capture_on_commit_callbacks):
    run = start(people, attached, django_capture_on_commit_callbacks,
                probe_ablation={"percents": [25, 100], "random_seeds": 1, "modes": ["zero_out"]})
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, list(run.log_lines.values_list("text", flat=True))
    steps = list(run.steps.all())
    assert [s.kind for s in steps] == [StepKind.EXTRACT, StepKind.STATISTICS, StepKind.RANKING, StepKind.RANKING,
                                       StepKind.PROBE_ABLATION]
    assert all(s.state == StepState.SUCCEEDED and not s.reused for s in steps)
    for step in steps:
        result = Result.objects.get(key=step.result_key)
        assert result.state == ResultState.READY and result.bytes > 0
        assert (folders["results"] / result.path).exists()
    extract = steps[0]
    assert (extract.done, extract.total, extract.unit) == (280, 280, "words")
    seqs = list(run.log_lines.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and run.log_seq == len(seqs)


def test_a_second_run_over_the_same_inputs_reuses_every_result(people, attached,
                                                              django_capture_on_commit_callbacks):
    start(people, attached, django_capture_on_commit_callbacks)
    results = Result.objects.count()
    again = start(people, attached, django_capture_on_commit_callbacks)
    again.refresh_from_db()
    assert again.state == RunState.SUCCEEDED
    assert all(s.reused and s.state == StepState.SUCCEEDED and s.attempts == 0 for s in again.steps.all())
    assert Result.objects.count() == results
    assert again.log_lines.filter(text__contains="reused the existing result").count() == 4


def test_a_consensus_ranking_is_its_own_result_with_its_stability(people, attached,
                                                                   django_capture_on_commit_callbacks):
    import json

    from analysis.models import results_root

    run = start(people, attached, django_capture_on_commit_callbacks, statistics=False,
                rankings=[{"method": "anova", "bootstrap": 4},
                          {"method": "anova", "bootstrap": 4, "consensus": "mean_rank"}])
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    plain, consensus = run.steps.filter(kind=StepKind.RANKING).order_by("pk")
    assert plain.result_key != consensus.result_key
    saved = json.loads((results_root() / Result.objects.get(key=consensus.result_key).path).read_text())
    assert saved["confidence"]["consensus"]["method"] == "mean_rank"
    assert "consensus" not in json.loads((results_root() / Result.objects.get(key=plain.result_key).path)
                                         .read_text())["confidence"]


def test_a_step_waits_for_the_steps_it_needs(people, attached, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    extract = run.steps.get(kind=StepKind.EXTRACT)
    assert extract.state == StepState.QUEUED and extract.task_id
    later = run.steps.exclude(pk=extract.pk)
    assert set(later.values_list("state", flat=True)) == {StepState.PENDING}
    assert set(later.values_list("task_id", flat=True)) == {""}  # nothing sent for them yet


def test_a_duplicate_delivery_computes_nothing(people, attached, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    step = run.steps.get(kind=StepKind.EXTRACT)
    assert services.claim_step(step.pk, "w1") is not None
    assert services.claim_step(step.pk, "w2") is None
    step.refresh_from_db()
    assert (step.worker, step.attempts) == ("w1", 1)
    assert Result.objects.filter(key=step.result_key).count() == 1


def test_two_runs_needing_the_same_missing_result_compute_it_once(people, attached,
                                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        first = services.create_run(people["owner"], people["project"], request_for(attached))
        second = services.create_run(people["editor"], people["project"], request_for(attached))
    one, two = (run.steps.get(kind=StepKind.EXTRACT) for run in (first, second))
    assert services.claim_step(one.pk, "w1") is not None
    assert services.claim_step(two.pk, "w2") is None  # it waits for the first run's build
    two.refresh_from_db()
    assert two.state == StepState.PENDING and two.attempts == 0
    assert second.log_lines.filter(text__contains=f"waiting for run {first.pk}").exists()
    from analysis.runs.runner import execute

    with django_capture_on_commit_callbacks(execute=True):
        one.state = StepState.QUEUED
        Step.objects.filter(pk=one.pk).update(state=StepState.QUEUED)
        assert execute(one.pk, "w1") == "succeeded"
    two.refresh_from_db()
    assert two.state == StepState.SUCCEEDED and two.reused
    for run in (first, second):
        run.refresh_from_db()
        assert run.state == RunState.SUCCEEDED
    assert Step.objects.filter(kind=StepKind.EXTRACT, reused=False, state=StepState.SUCCEEDED).count() == 1


@pytest.mark.parametrize("change, field, message", [
    ({"models": []}, "models", "Choose at least one model"),
    ({"models": [99999]}, "models", "is not one of this project's models"),
    ({"models": [{"id": 1}]}, "models", "a list of model ids"),
    ({"corpus": "toy"}, "corpus", "Choose one of this project's corpora"),
    ({"rankings": [{"method": "lca", "options": {"control": "yes"}}]}, "rankings",
     "options are an object of true or false values"),
    ({"corpus": None}, "corpus", "Choose one of this project's corpora"),
    ({"neuron_sets": ["attention"]}, "neuron_sets", "Choose neuron sets among hidden, mlp"),
    ({"neuron_sets": ["enc.hidden"]}, "neuron_sets",
     "enc.hidden name one stack of an encoder-decoder, and tiny bert is not one; choose hidden or mlp."),
    ({"layers": [-1]}, "layers", "list of layer numbers"),
    ({"layers": [7]}, "layers", "Layer 7 does not exist"),
    ({"rankings": [{"method": "magic"}]}, "rankings", "unknown method 'magic'"),
    ({"rankings": [{"method": "anova", "bootstrap": 1}]}, "rankings", "0 (none) or from 2 to 1000"),
    ({"rankings": [{"method": "anova", "options": {"l1": 2}}]}, "rankings", "anova takes no option l1"),
    ({"rankings": [{"method": "anova", "bootstrap": 3, "consensus": "mean_rank"}]}, "rankings",
     "consensus orders neurons over the bootstrap resamples: choose mean_rank or selection_frequency with "
     "bootstrap 4 or more (now 3)"),
    ({"rankings": [{"method": "anova", "bootstrap": 4, "consensus": "vote"}]}, "rankings", "choose mean_rank or"),
    ({"rankings": [], "statistics": False}, "rankings", "at least one ranking, for statistics or for a probe"),
    ({"aggregation": "middle"}, "aggregation", "Aggregation must be one of"),
    ({"probe_ablation": "yes"}, "probe_ablation", "probe_ablation is true, false, or an object"),
    ({"probe_ablation": {"percents": [0]}}, "probe_ablation", "percents: the shares of neurons to keep"),
    ({"probe_ablation": {"modes": ["melt"]}}, "probe_ablation", "modes: choose among zero_out, retrain"),
])
def test_a_bad_request_says_what_to_change_and_stores_nothing(people, attached, change, field, message):
    with pytest.raises(ValidationError) as caught:
        services.create_run(people["owner"], people["project"], request_for(attached, **change))
    assert any(message in text for text in caught.value.message_dict[field]), caught.value.message_dict
    assert Run.objects.count() == Step.objects.count() == LogLine.objects.count() == 0


def test_a_model_outside_the_project_is_refused(people, attached, tiny_bert):
    from tests.support.uploads import upload_model

    elsewhere = upload_model(people["owner"], tiny_bert, name="not attached")
    with pytest.raises(ValidationError) as caught:
        services.create_run(people["owner"], people["project"], request_for(attached, models=[elsewhere.pk]))
    assert "not one of this project's models" in caught.value.message_dict["models"][0]
    assert Run.objects.count() == 0


def test_viewers_cannot_start_cancel_or_retry(people, attached, django_capture_on_commit_callbacks):
    with pytest.raises(PermissionDenied):
        services.create_run(people["viewer"], people["project"], request_for(attached))
    assert Run.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["editor"], people["project"], request_for(attached))
    with pytest.raises(PermissionDenied):
        services.cancel_run(people["viewer"], run)
    services.cancel_run(people["editor"], run)
    with pytest.raises(PermissionDenied):
        services.retry_run(people["viewer"], run)


def test_cancel_stops_every_unfinished_step_and_retry_reuses_finished_ones(
        people, attached, django_capture_on_commit_callbacks):
    from analysis.runs.runner import execute

    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    extract = run.steps.get(kind=StepKind.EXTRACT)
    with django_capture_on_commit_callbacks(execute=False):
        assert execute(extract.pk, "w1") == "succeeded"
    services.cancel_run(people["owner"], run)
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    assert set(run.steps.exclude(pk=extract.pk).values_list("state", flat=True)) == {StepState.CANCELLED}
    with pytest.raises(services.RunStateError, match="already finished"):
        services.cancel_run(people["owner"], run)
    with django_capture_on_commit_callbacks(execute=True):
        services.retry_run(people["owner"], run)
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED
    extract.refresh_from_db()
    assert extract.attempts == 1 and not extract.reused  # kept, not run again
    with pytest.raises(services.RunStateError, match="Only a failed or cancelled run"):
        services.retry_run(people["owner"], run)


def test_a_cancelled_running_step_stops_at_its_next_chunk(people, attached, django_capture_on_commit_callbacks):
    from analysis.runs import runner

    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    extract = run.steps.get(kind=StepKind.EXTRACT)
    claimed = services.claim_step(extract.pk, "w1")
    job = runner.StepJob(claimed)
    assert not job.should_stop()
    services.cancel_run(people["owner"], run)
    job.last_stop_check = 0.0
    assert job.should_stop()
    services.step_stopped(claimed)
    extract.refresh_from_db()
    assert extract.state == StepState.CANCELLED
    assert not Result.objects.filter(key=extract.result_key).exists()  # the build is released


def test_a_failing_step_records_its_reason_and_the_run_fails_cleanly(
        people, attached, folders, django_capture_on_commit_callbacks):
    (folders["media"] / attached["corpus"].storage_prefix / attached["corpus"].metadata["word_file"]).write_text(
        "1\tchanged\tchanged\tNOUN\t_\t_\t0\troot\t_\t_\n\n")
    run = start(people, attached, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert "no longer matches what was uploaded" in run.error and "Traceback" not in run.error
    extract = run.steps.get(kind=StepKind.EXTRACT)
    assert extract.state == StepState.FAILED and "upload it again" in extract.error
    assert set(run.steps.exclude(pk=extract.pk).values_list("state", flat=True)) == {StepState.CANCELLED}
    assert not Result.objects.exists()


def test_the_reaper_requeues_a_dead_workers_step_then_gives_up(people, attached, settings,
                                                              django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    settings.NEUROX_STEP_MAX_ATTEMPTS = 2
    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    step = run.steps.get(kind=StepKind.EXTRACT)
    first_task = step.task_id
    services.claim_step(step.pk, "gpu@dead")
    later = timezone.now() + timedelta(seconds=settings.NEUROX_STEP_STALE_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.reap(now=later)["requeued"] == [step.pk]
    step.refresh_from_db()
    assert step.state == StepState.QUEUED and step.task_id != first_task
    assert run.log_lines.filter(text__contains="gpu@dead running it stopped answering").exists()
    services.claim_step(step.pk, "gpu@dead-again")
    assert services.reap(now=later + timedelta(seconds=settings.NEUROX_STEP_STALE_SECONDS + 1))["failed"] == [
        step.pk]
    step.refresh_from_db()
    run.refresh_from_db()
    assert step.state == StepState.FAILED and "Gave up after 2 attempts" in step.error
    assert run.state == RunState.FAILED


def test_the_reaper_resends_a_step_whose_message_was_lost(people, attached, settings,
                                                         django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    step = run.steps.get(kind=StepKind.EXTRACT)
    first_task = step.task_id
    assert services.reap()["resent"] == []
    later = timezone.now() + timedelta(seconds=settings.NEUROX_STEP_RESEND_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.reap(now=later)["resent"] == [step.pk]
    step.refresh_from_db()
    assert step.task_id != first_task
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED


@pytest.mark.filterwarnings("ignore:task_always_eager has no effect on send_task")  # a real message, on purpose
def test_the_reaper_does_not_resend_a_step_whose_message_still_waits_in_the_broker(
        people, attached, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from analysis.steps.queues import messages_waiting
    from neurox_site.celery import app

    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    step = run.steps.get(kind=StepKind.EXTRACT)
    queue = f"test-resend-{step.pk}"
    Step.objects.filter(pk=step.pk).update(queue=queue)
    later = timezone.now() + timedelta(seconds=settings.NEUROX_STEP_RESEND_SECONDS + 1)
    with app.connection_for_write() as connection:  # the step's message, waiting behind a busy worker
        app.send_task("analysis.tasks.run_step", args=[step.pk], queue=queue, connection=connection)
    try:
        assert messages_waiting(queue) == 1
        with django_capture_on_commit_callbacks(execute=False) as sent:
            assert services.reap(now=later)["resent"] == []
        assert sent == [] and not run.log_lines.filter(text__contains="sent again").exists()
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)
    with django_capture_on_commit_callbacks(execute=False):  # the message is gone: now it is sent again
        assert services.reap(now=later)["resent"] == [step.pk]


def test_log_lines_are_numbered_per_run_and_written_in_batches(people, attached, django_assert_num_queries,
                                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    buffer = services.LogBuffer(run.pk, None, every=3600, size=10)
    with django_assert_num_queries(0):
        for i in range(9):
            buffer.add(f"line {i}")
    with django_assert_num_queries(5):  # savepoint, lock the counter, insert, bump, release: one batch
        buffer.add("line 9")
    assert list(run.log_lines.values_list("text", flat=True))[-10:] == [f"line {i}" for i in range(10)]


def test_log_lines_and_progress_wake_the_runs_channel_group(people, attached, django_capture_on_commit_callbacks):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(services.run_group(run.pk), channel)
    with django_capture_on_commit_callbacks(execute=True):
        services.write_log(run.pk, ["hello"])
    assert async_to_sync(layer.receive)(channel) == {"type": "run.changed", "run": run.pk}
    step = services.claim_step(run.steps.get(kind=StepKind.EXTRACT).pk, "w1")
    services.heartbeat(step.pk, 5, 280, "words")
    assert async_to_sync(layer.receive)(channel) == {"type": "run.changed", "run": run.pk}


def test_runs_are_visible_to_members_only(people, attached, django_capture_on_commit_callbacks):
    from django.contrib.auth.models import AnonymousUser
    from django.http import Http404

    from analysis.runs import selectors

    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    for who in ("owner", "editor", "viewer"):
        assert list(selectors.runs_visible_to(people[who])) == [run]
        assert selectors.run_for(people[who], run.pk) == run
    for outsider in (people["stranger"], AnonymousUser()):
        assert not selectors.runs_visible_to(outsider).exists()
        with pytest.raises(Http404):
            selectors.run_for(outsider, run.pk)
    assert [line.seq for line in selectors.log_lines_after(run, 0)] == [1]
    assert list(selectors.log_lines_after(run, 1)) == []


def test_a_step_failing_after_its_run_was_cancelled_releases_its_build(people, attached,
                                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    step = services.claim_step(run.steps.get(kind=StepKind.EXTRACT).pk, "w1")
    services.cancel_run(people["owner"], run)
    services.fail_step(step, "It broke.")
    step.refresh_from_db()
    assert step.state == StepState.CANCELLED
    assert not Result.objects.filter(key=step.result_key).exists()
    assert run.log_lines.filter(text=f"{step.title}: stopped.").exists()


def test_a_step_finishing_just_after_its_run_was_cancelled_keeps_its_result_and_says_so(
        people, attached, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    step = services.claim_step(run.steps.get(kind=StepKind.EXTRACT).pk, "w1")
    services.cancel_run(people["owner"], run)
    services.finish_step(step, "stores/x", 10, {})
    step.refresh_from_db()
    assert step.state == StepState.CANCELLED
    assert Result.objects.get(key=step.result_key).state == ResultState.READY
    assert run.log_lines.filter(text__endswith="finished as it was stopped; its result is kept for reuse.").exists()


def test_runs_over_the_users_limit_wait_say_so_and_start_when_a_slot_frees(people, attached,
                                                                          django_capture_on_commit_callbacks):
    first, second = two_runs_over_a_limit_of_one(people, attached, django_capture_on_commit_callbacks)
    waiting = second.steps.get(kind=StepKind.EXTRACT)
    assert (first.admitted, second.admitted, waiting.state) == (True, False, StepState.PENDING)
    assert second.log_lines.filter(text__startswith="Waiting: 1 of your runs are active and your limit is 1").exists()
    with django_capture_on_commit_callbacks(execute=False):
        services.cancel_run(people["owner"], first)  # frees the slot
    waiting.refresh_from_db()
    second.refresh_from_db()
    assert second.admitted and waiting.state == StepState.QUEUED


def test_a_run_whose_every_result_exists_needs_no_slot(people, attached, django_capture_on_commit_callbacks):
    owner = people["owner"]
    start(people, attached, django_capture_on_commit_callbacks)
    owner.max_concurrent_runs = 1
    owner.save()
    with django_capture_on_commit_callbacks(execute=False):
        services.create_run(owner, people["project"], request_for(attached, seed=5))  # takes the only slot
    again = start(people, attached, django_capture_on_commit_callbacks)
    again.refresh_from_db()
    assert again.state == RunState.SUCCEEDED and not again.admitted
