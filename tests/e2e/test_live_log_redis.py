"""The run websocket through the real server process on a real Redis channel layer (a ``redis-server`` of this
module's own, so that a test can kill and restart it): an idle socket stays open past redis-py 8's 5 s socket
timeout, a page that says which line it has gets every line after it, and Redis down costs the wake-ups only
(the handshake, the snapshot and the lines come from the database).

The soak test (slow) keeps one socket open for ``NEUROX_SOAK_SECONDS`` (default 300) while this process writes a
line every few seconds, kills Redis halfway and starts it again: every line arrives once, in order, within
``LATENCY_SECONDS`` while Redis is up, and the socket never closes.

This process writes the lines through ``services.write_log``, whose wake-ups go to the same private Redis (the
``CHANNEL_LAYERS`` setting is pointed at it), so a line normally arrives by its wake-up, not the timer.
"""

from __future__ import annotations

import os
import re
import threading
import time

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as websocket_connect

from analysis.runs import services
from analysis.models import Run, Step, StepKind
from tests.assets import skip_or_fail_in_ci
from tests.e2e.server import ServerProcess
from tests.factories import ProjectFactory, UserFactory
from tests.support.ports import free_port
from tests.support.redis_server import REDIS_SERVER, PrivateRedis

pytestmark = [pytest.mark.django_db(transaction=True)]

LATENCY_SECONDS = 2.0  # a wake-up is near-instant; the consumer's database timer alone is 1 s
SOAK_SECONDS = float(os.environ.get("NEUROX_SOAK_SECONDS", "300"))


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    if REDIS_SERVER is None:
        skip_or_fail_in_ci("needs the redis-server program (Debian's redis-server package)")
    redis = PrivateRedis(free_port(), tmp_path_factory.mktemp("live-log-redis") / "redis.log")
    redis.start()
    yield redis
    redis.kill()


@pytest.fixture(scope="module")
def server(django_db_setup, redis_server, tmp_path_factory):
    """The real server (uvicorn, ``neurox_site.asgi``) on the test database and the private Redis."""
    process = ServerProcess(str(connections["default"].settings_dict["NAME"]), tmp_path_factory.mktemp("live-log"),
                            env={"REDIS_URL": redis_server.url})
    yield process
    process.stop()


@pytest.fixture
def wake_ups_to_private_redis(settings, redis_server):
    """This process's wake-ups (``services._wake``) go to the server's Redis."""
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "neurox_site.channel_layer.ResilientRedisChannelLayer",
        "CONFIG": {"hosts": [redis_server.url], "prefix": "neurox:channels"}}}


@pytest.fixture
def run_and_cookie(transactional_db, wake_ups_to_private_redis):
    """A run with one running step, and the session cookie of its owner (committed: the server sees both)."""
    owner = UserFactory(username="olivia")
    run = Run.objects.create(project=ProjectFactory(owner=owner, name="Live log"), created_by=owner, request={})
    Step.objects.create(run=run, kind=StepKind.EXTRACT, title="Extract activations", result_key="k", queue="gpu",
                        state="running", done=1, total=100, unit="words")
    browser = Client()
    browser.force_login(owner)
    return run, f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"


def open_socket(server, run, cookie, after: int | None = None, origin: str | None = None):
    query = "" if after is None else f"?after={after}"
    url = server.url.replace("http://", "ws://") + f"/ws/runs/{run.pk}/{query}"
    return websocket_connect(url, origin=origin or server.url, additional_headers={"Cookie": cookie},
                             open_timeout=30)


def seqs_in(html: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'id="log-(\d+)"', html)]


class Reader:
    """Receives on a socket in a thread: ``arrivals`` is [(seq, monotonic time)], ``closed`` the close, if any."""

    def __init__(self, socket):
        self.socket, self.arrivals, self.closed = socket, [], None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for message in self.socket:
                now = time.monotonic()
                self.arrivals += [(seq, now) for seq in seqs_in(message)]
        except ConnectionClosed as closed:
            self.closed = closed
        else:
            self.closed = "closed cleanly"

    def seqs(self) -> list[int]:
        return [seq for seq, _ in self.arrivals]

    def wait_for(self, seq: int, timeout: float) -> float:
        """Seconds until line ``seq`` arrived (fails after ``timeout``)."""
        started = time.monotonic()
        while seq not in self.seqs():
            assert self.closed is None, f"the socket closed: {self.closed}"
            assert time.monotonic() - started < timeout, f"line {seq} did not arrive within {timeout} s"
            time.sleep(0.02)
        return dict(self.arrivals)[seq] - started


def write_line(run, text: str) -> int:
    services.write_log(run.pk, [text])
    run.refresh_from_db()
    return run.log_seq


def test_an_idle_socket_stays_open_and_gets_the_next_line(server, run_and_cookie):
    """redis-py 8's 5 s socket timeout ended the consumer's blocking read, and the socket with it, every ~5 s."""
    run, cookie = run_and_cookie
    write_line(run, "first")
    with open_socket(server, run, cookie) as socket:
        reader = Reader(socket)
        reader.wait_for(1, timeout=10)
        time.sleep(12)  # more than twice the blocking read's 5 s
        assert reader.closed is None, f"the socket closed while idle: {reader.closed}\n{server.log()}"
        assert reader.wait_for(write_line(run, "after the quiet"), timeout=LATENCY_SECONDS) < LATENCY_SECONDS
    assert "TimeoutError" not in server.log(tail=100_000)


def test_a_page_that_says_its_last_line_gets_every_line_after_it(server, run_and_cookie):
    """A socket that was down while 1,522 lines were written: all of them arrive, not only the last 200."""
    run, cookie = run_and_cookie
    services.write_log(run.pk, [f"line {i}" for i in range(1, 1530)])
    with open_socket(server, run, cookie, after=7) as socket:
        reader = Reader(socket)
        reader.wait_for(1529, timeout=20)
        assert reader.seqs() == list(range(8, 1530))
    with open_socket(server, run, cookie) as socket:  # a client that does not say: the last 200
        reader = Reader(socket)
        reader.wait_for(1529, timeout=20)
        assert reader.seqs() == list(range(1330, 1530))


def test_a_page_on_another_port_of_the_same_host_cannot_open_the_socket(server, run_and_cookie):
    run, cookie = run_and_cookie
    with pytest.raises(InvalidStatus) as refused:
        open_socket(server, run, cookie, origin="http://127.0.0.1:9999")
    assert refused.value.response.status_code == 403
    with open_socket(server, run, cookie) as socket:  # the site's own origin, port included
        assert 'id="run-status"' in socket.recv(timeout=10)


def test_with_redis_down_the_socket_opens_and_lines_arrive(server, redis_server, run_and_cookie):
    run, cookie = run_and_cookie
    write_line(run, "before")
    redis_server.kill()
    try:
        with open_socket(server, run, cookie) as socket:  # was a 500: group_add raised in the handshake
            reader = Reader(socket)
            reader.wait_for(1, timeout=10)
            assert reader.wait_for(write_line(run, "while Redis is down"), timeout=LATENCY_SECONDS + 1) < 3
    finally:
        redis_server.start()


@pytest.mark.slow
@pytest.mark.timeout(SOAK_SECONDS + 180)
def test_soak_one_socket_for_minutes_across_a_redis_restart(server, redis_server, run_and_cookie):
    run, cookie = run_and_cookie
    written = {write_line(run, "soak start"): time.monotonic()}
    with open_socket(server, run, cookie) as socket:
        reader = Reader(socket)
        reader.wait_for(1, timeout=10)
        started, restarted, down_lines = time.monotonic(), False, set()
        while time.monotonic() - started < SOAK_SECONDS:
            if not restarted and time.monotonic() - started > SOAK_SECONDS / 2:
                redis_server.kill()
                for i in range(5):  # written while Redis is down
                    seq = write_line(run, f"while down {i}")
                    written[seq] = time.monotonic()
                    down_lines.add(seq)
                    time.sleep(1)
                redis_server.start()
                restarted = True
            seq = write_line(run, f"soak {len(written)}")
            written[seq] = time.monotonic()
            reader.wait_for(seq, timeout=LATENCY_SECONDS + 3)
            time.sleep(3)
        assert reader.closed is None, f"the socket closed: {reader.closed}"
    assert restarted
    assert reader.seqs() == sorted(written), "every line once, in order"
    arrived = dict(reader.arrivals)
    slow = {seq: round(arrived[seq] - written[seq], 2) for seq in written
            if seq not in down_lines and arrived[seq] - written[seq] > LATENCY_SECONDS}
    assert not slow, f"lines later than {LATENCY_SECONDS} s while Redis was up: {slow}"
