"""Site-wide wiring: API docs offline, throttling, the ASGI router, Celery routing, the dev bootstrap command."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_schema_and_docs_are_served_and_docs_assets_are_local(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/tokens/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn.jsdelivr" not in html


def test_per_user_throttle(user, settings):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    rates = {"user": "3/min", "anon": "3/min"}
    original_rates = SimpleRateThrottle.THROTTLE_RATES  # DRF reads the rates once, at import
    other_user = UserFactory(username="someone-else")
    # Only this test's keys: clearing a Redis cache would flush the whole database (the Celery broker's too).
    throttle_keys = [f"throttle_user_{u.pk}" for u in (user, other_user)]
    cache.delete_many(throttle_keys)
    SimpleRateThrottle.THROTTLE_RATES = rates
    try:
        api = APIClient()
        api.force_authenticate(user)
        codes = [api.get("/api/v1/tokens/").status_code for _ in range(4)]
        other = APIClient()
        other.force_authenticate(other_user)
        other_code = other.get("/api/v1/tokens/").status_code
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original_rates
        cache.delete_many(throttle_keys)
    assert codes == [200, 200, 200, 429]
    assert other_code == 200  # the limit is per user


def test_asgi_application_routes_http_and_websocket():
    from channels.routing import ProtocolTypeRouter

    from neurox_site.asgi import application

    assert isinstance(application, ProtocolTypeRouter)
    assert set(application.application_mapping) == {"http", "websocket"}


def test_celery_app_has_gpu_and_cpu_queues_and_long_task_safety():
    from neurox_site import celery_app

    conf = celery_app.conf
    assert {queue.name for queue in conf.task_queues} == {"gpu", "cpu", "realtime"}
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit > conf.task_soft_time_limit
    if conf.broker_url.startswith("redis"):  # without Redis: the filesystem broker, which has no such timeout
        assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    # each step type names its queue, where the one step task is sent (no routing by name pattern): model work
    # on gpu, array work on cpu
    from analysis import tasks
    from analysis.steps import step_type

    assert conf.task_routes == {}
    assert step_type("extract").queue == "gpu"
    assert {step_type(kind).queue for kind in ("ranking", "statistics", "probe_ablation")} | {tasks.reap.queue} == {
        "cpu"}
    assert conf.beat_schedule["reap-stale-steps"]["task"] == tasks.reap.name


def test_bootstrap_dev_creates_a_superuser_and_prints_the_login(settings):
    settings.DEBUG = True
    out = io.StringIO()
    call_command("bootstrap_dev", stdout=out)
    text = out.getvalue()
    password = text.split("password: ")[1].split()[0]
    dev = get_user_model().objects.get(username="dev")
    assert dev.is_superuser and dev.check_password(password)
    call_command("bootstrap_dev", stdout=io.StringIO())  # a second run resets, does not fail
    assert get_user_model().objects.filter(username="dev").count() == 1


def test_bootstrap_dev_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("bootstrap_dev", stdout=io.StringIO())
