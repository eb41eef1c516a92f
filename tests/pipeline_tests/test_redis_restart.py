"""Redis restarted mid-run, with no persistence (every queued message is lost): the run still finishes, with
every log line. Real worker processes against a private ``redis-server`` this test starts and kills, on the test
database (PostgreSQL in CI); the test process plays the reaper (``services.reap()``, as beat would).

What happens: the step running when Redis dies goes on and finishes (its heartbeats and log go to PostgreSQL);
the messages for the steps it unblocks cannot be sent, so they stay queued; the worker reconnects once Redis is
back; the reaper sends again every queued step whose message is gone, including the one that waited in Redis."""

from __future__ import annotations

import os
import time

import pytest
from django.db.models import Q
from kombu import pools

from analysis.runs import services
from analysis.models import RunState, Step, StepKind, StepState
from neurox_site.celery import app
from projects.services.attachments import attach_upload
from tests.support.ports import free_port
from tests.support.real_workers import BIG_CORPUS, run_state, wait_for
from tests.support.redis_server import REDIS_SERVER, PrivateRedis
from tests.support.runs import request_for
from tests.support.tiny_models import make_tiny_model
from tests.support.uploads import upload_corpus, upload_model

IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL") and not IN_CI,
                       reason="real-worker tests need Redis: set REDIS_URL (e.g. redis://127.0.0.1:6379/7)"),
    pytest.mark.skipif(REDIS_SERVER is None and not IN_CI,
                       reason="needs the redis-server program (Debian's redis-server package) to restart Redis"),
]


def point_celery_at(url: str) -> None:
    """The test process's Celery app sends to ``url`` from now on (its connection pools were made for the old
    broker)."""
    app.conf.broker_url = url
    pools.reset()  # kombu keeps one pool per broker URL: closing ours alone would leave it closed for the next test
    app._after_fork()  # drops the app's references to the connection and producer pools, as in a forked child


@pytest.fixture
def private_redis(settings, tmp_path):
    if REDIS_SERVER is None:
        pytest.fail("CI=true and redis-server is missing: install Debian's redis-server package")
    redis = PrivateRedis(free_port(), tmp_path / "redis.log")
    redis.start()
    old_url = app.conf.broker_url
    point_celery_at(redis.url)
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [redis.url], "prefix": "neurox:channels"}}}
    yield redis
    point_celery_at(old_url)
    redis.kill()


def test_redis_restarted_while_steps_are_queued_and_running_the_run_still_finishes_with_every_line(
        private_redis, people, folders, tiny_bert, tmp_path, settings, celery):
    owner, project = people["owner"], people["project"]
    other_bert = make_tiny_model("bert", tmp_path / "other-bert", seed=1)  # other weights: a second store key
    corpus = upload_corpus(owner, BIG_CORPUS, seed=5)
    models = [upload_model(owner, tiny_bert, name="tiny bert"), upload_model(owner, other_bert, name="other bert")]
    for upload in (*models, corpus):
        attach_upload(owner, project, upload)
    settings.NEUROX_STEP_RESEND_SECONDS = 2
    worker = celery("worker", "-Q", "gpu,cpu", "--concurrency", "1", name="solo", REDIS_URL=private_redis.url)
    run = services.create_run(owner, project, request_for({"model": models[0], "corpus": corpus},
                                                          models=[m.pk for m in models]))
    extracts = run.steps.filter(kind=StepKind.EXTRACT)
    assert extracts.count() == 2 and run.steps.count() == 8

    # one extraction claimed and running (loading its model: the tiny model's forward passes themselves last
    # only ~0.2 s), the other's message waiting in Redis behind it
    wait_for(lambda: extracts.filter(state=StepState.RUNNING).exists()
             and extracts.filter(state=StepState.QUEUED).exists(), 30, "one extraction running, one queued",
             [worker])
    private_redis.kill()
    through_the_outage = extracts.get(state=StepState.RUNNING)
    # it finishes while Redis is down: the messages for the steps that needed it cannot be sent
    wait_for(lambda: Step.objects.filter(pk=through_the_outage.pk, state=StepState.SUCCEEDED).exists()
             and "] succeeded in " in worker.log(tail=10**7), 60,
             "the running extraction's task to return while Redis is down", [worker])
    private_redis.start()

    def finished_after_reaping():
        services.reap()
        time.sleep(0.25)
        return run_state(run) in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)

    wait_for(finished_after_reaping, 120, "the run to finish after the Redis restart", [worker])
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    steps = list(run.steps.all())
    assert all(s.state == StepState.SUCCEEDED and not s.reused for s in steps), [(s.title, s.state) for s in steps]
    through_the_outage.refresh_from_db()
    assert through_the_outage.attempts == 1  # it went on through the outage: nothing was computed twice
    worker_log = worker.log(tail=10**7)
    assert "Connection to broker lost" in worker_log and worker_log.count("INFO/MainProcess] Connected to") == 2
    assert ": 'failed'" not in worker_log and "Traceback" not in worker_log  # a send that failed is no failure

    lines = list(run.log_lines.values_list("seq", "text"))
    assert [seq for seq, _ in lines] == list(range(1, run.log_seq + 1))  # numbered 1..N without gaps
    texts = [text for _, text in lines]
    assert texts[0].startswith("Run created by olivia: 8 steps.") and texts[-1] == "Run succeeded."
    for step in steps:
        assert sum(text.startswith(f"{step.title}: done in ") for text in texts) == 1, step.title
    for extract in extracts:  # the engine's own lines of both extractions, once each
        assert run.log_lines.filter(step=extract, text__startswith="corpus: 3,000 sentences").count() == 1
    assert any("no worker took it for 2 s; sent again" in text for text in texts), texts
    assert not Step.objects.filter(Q(run=run) & ~Q(state=StepState.SUCCEEDED)).exists()


def test_a_run_created_while_redis_is_down_is_stored_queued_and_sent_once_redis_is_back(
        private_redis, people, attached, settings, caplog):
    from datetime import timedelta

    from django.utils import timezone

    from analysis.steps.queues import messages_waiting

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    try:
        private_redis.kill()
        with caplog.at_level("WARNING", logger="analysis.runs.services"):
            run = services.create_run(people["owner"], people["project"], request_for(attached))  # no error
        extract = run.steps.get(kind=StepKind.EXTRACT)
        assert extract.state == StepState.QUEUED
        assert f"could not send step {extract.pk} to the broker" in caplog.text
        private_redis.start()
        assert messages_waiting("gpu") in (0, None)  # the message never reached Redis
        later = timezone.now() + timedelta(seconds=settings.NEUROX_STEP_RESEND_SECONDS + 1)
        assert services.reap(now=later)["resent"] == [extract.pk]
        assert messages_waiting("gpu") == 1
    finally:
        app.conf.task_always_eager = True
