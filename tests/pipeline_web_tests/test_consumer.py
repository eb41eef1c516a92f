"""The run websocket through the real ASGI application (origin check, session authentication, routing):
strangers and anonymous clients are refused, a viewer receives but cannot cancel, every log line arrives in
order when the channel layer's wake-ups are lost, and a wake-up delivers at once."""

from __future__ import annotations

import json
import re

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from analysis.runs import consumers, services
from analysis.models import Run, RunState, Step, StepKind
from neurox_site.asgi import application

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
async def close_consumer_connections():
    """The consumer reads in asgiref's thread for sync code; close that thread's connection after each test
    (PostgreSQL would not drop the test database while it is open)."""
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def bare_run(people):
    """A run with one queued step, made directly (nothing is sent to a worker)."""
    run = Run.objects.create(project=people["project"], created_by=people["owner"], request={})
    Step.objects.create(run=run, kind=StepKind.EXTRACT, title="Extract activations: tiny × toy", result_key="k",
                        queue="gpu", state="queued", done=10, total=280, unit="words")
    return run


@pytest.fixture
def cookies(people):
    """A signed-in session cookie per role (made before the event loop runs: sessions live in the database)."""
    found = {}
    for who in ("owner", "editor", "viewer", "stranger"):
        client = Client()
        client.force_login(people[who])
        found[who] = f"sessionid={client.cookies['sessionid'].value}".encode()
    return found


def socket_for(run, cookie=None, origin=b"http://testserver", query: str = "") -> WebsocketCommunicator:
    headers = [(b"host", b"testserver"), (b"origin", origin)] + ([(b"cookie", cookie)] if cookie else [])
    return WebsocketCommunicator(application, f"/ws/runs/{run.pk}/{query}", headers=headers)


def seqs_in(html: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'id="log-(\d+)"', html)]


async def receive_until(socket, wanted_seqs: set[int], timeout: float) -> list[int]:
    """Every log seq received until ``wanted_seqs`` were all seen (fails on ``timeout`` without a message)."""
    seen: list[int] = []
    while not wanted_seqs <= set(seen):
        seen += seqs_in(await socket.receive_from(timeout=timeout))
    return seen


write_log = database_sync_to_async(services.write_log)


@pytest.mark.parametrize("who", ["stranger", None])
async def test_strangers_and_anonymous_clients_are_refused(cookies, bare_run, who):
    socket = socket_for(bare_run, cookies[who] if who else None)
    connected, code = await socket.connect()
    assert not connected and code == consumers.CLOSE_NOT_ALLOWED
    await socket.disconnect()  # the client's side of the close: the consumer ends (else it waits on the layer)


@pytest.mark.parametrize("origin", [b"http://evil.example", b"http://testserver:9999", b"https://testserver",
                                    b"http://testserver.evil.example", b""])
async def test_another_sites_page_cannot_open_the_socket(cookies, bare_run, origin):
    """Scheme, host and port: the same host on another port is another site (it streamed the log before)."""
    socket = socket_for(bare_run, cookies["owner"], origin=origin)
    connected, _ = await socket.connect()
    assert not connected
    await socket.disconnect()


async def test_an_origin_the_operator_trusts_can_open_the_socket(cookies, bare_run, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://testserver:8443"]  # e.g. a TLS proxy on another port
    socket = socket_for(bare_run, cookies["owner"], origin=b"https://testserver:8443")
    assert (await socket.connect())[0]
    await socket.disconnect()


async def test_the_snapshot_has_the_steps_bars_and_the_last_lines(cookies, bare_run):
    await write_log(bare_run.pk, ["first", "second"])
    socket = socket_for(bare_run, cookies["viewer"])
    connected, _ = await socket.connect()
    assert connected
    snapshot = await socket.receive_from(timeout=2)
    assert 'id="run-steps"' in snapshot and 'id="step-' in snapshot and "10 / 280 words" in snapshot
    assert "position 1 in the gpu queue" in snapshot
    assert 'id="run-log" class="run-log" hx-swap-oob="true"' in snapshot and seqs_in(snapshot) == [1, 2]
    assert "Cancel run" not in snapshot
    await socket.disconnect()


async def test_a_viewer_receives_but_cannot_cancel(cookies, bare_run):
    socket = socket_for(bare_run, cookies["viewer"])
    await socket.connect()
    await socket.receive_from(timeout=2)
    await socket.send_to(text_data=json.dumps({"action": "cancel"}))
    refusal = await socket.receive_from(timeout=2)
    assert 'id="run-message"' in refusal and "Viewers cannot cancel runs." in refusal
    await bare_run.arefresh_from_db()
    assert bare_run.state == RunState.QUEUED
    await socket.disconnect()


async def test_an_editor_cancels_over_the_socket_and_sees_it(cookies, bare_run, monkeypatch):
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 60)
    socket = socket_for(bare_run, cookies["editor"])
    await socket.connect()
    assert "Cancel run" in await socket.receive_from(timeout=2)
    await socket.send_to(text_data=json.dumps({"action": "cancel"}))
    update = await socket.receive_from(timeout=2)
    assert "Cancelled" in update and "Retry run" in update
    await bare_run.arefresh_from_db()
    assert bare_run.state == RunState.CANCELLED
    await socket.disconnect()


async def test_every_line_arrives_in_order_when_the_wake_ups_are_lost(cookies, bare_run, monkeypatch):
    monkeypatch.setattr(services, "_wake", lambda run_id: None)  # the channel layer drops every message
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 0.1)
    socket = socket_for(bare_run, cookies["viewer"])
    await socket.connect()
    seen = seqs_in(await socket.receive_from(timeout=2))
    for batch in range(5):
        await write_log(bare_run.pk, [f"batch {batch} line {i}" for i in range(7)])
    seen += await receive_until(socket, set(range(1, 36)), timeout=2)
    assert seen == list(range(1, 36))  # in order, none twice
    await socket.disconnect()


async def test_a_wake_up_delivers_a_line_at_once(cookies, bare_run, monkeypatch):
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 60)  # only the wake-up can bring it in time
    socket = socket_for(bare_run, cookies["owner"])
    await socket.connect()
    await socket.receive_from(timeout=2)
    await write_log(bare_run.pk, ["hello from a worker"])
    update = await socket.receive_from(timeout=1)
    assert seqs_in(update) == [1] and "hello from a worker" in update and 'hx-swap-oob="beforeend"' in update
    await socket.disconnect()


async def test_progress_reaches_the_bars(cookies, bare_run, monkeypatch):
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 0.1)
    socket = socket_for(bare_run, cookies["owner"])
    await socket.connect()
    await socket.receive_from(timeout=2)
    await database_sync_to_async(Step.objects.filter(run=bare_run).update)(done=140)
    assert "140 / 280 words" in await socket.receive_from(timeout=2)
    await socket.disconnect()


async def test_a_member_removed_while_watching_is_closed(cookies, people, bare_run, monkeypatch):
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 0.1)
    socket = socket_for(bare_run, cookies["viewer"])
    await socket.connect()
    await socket.receive_from(timeout=2)
    await database_sync_to_async(people["project"].memberships.filter(user=people["viewer"]).delete)()
    closed = await socket.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": consumers.CLOSE_NOT_ALLOWED}
    await socket.disconnect()


@pytest.mark.parametrize(("query", "expected"), [
    (b"", None), (b"after=0", 0), (b"after=41", 41), (b"after=-1", None), (b"after=4x", None),
    (b"after=", None), (b"other=3", None), (b"after=5&after=9", 5),
])
async def test_the_resume_point_is_a_whole_number_from_zero_or_nothing(query, expected):
    assert consumers.resume_point(query) == expected


async def test_a_page_that_says_its_last_line_gets_the_lines_after_it_appended(cookies, bare_run):
    await write_log(bare_run.pk, [f"line {i}" for i in range(1, 11)])
    socket = socket_for(bare_run, cookies["viewer"], query="?after=7")
    assert (await socket.connect())[0]
    snapshot = await socket.receive_from(timeout=2)
    assert seqs_in(snapshot) == [8, 9, 10] and 'hx-swap-oob="beforeend"' in snapshot
    assert 'id="run-steps"' in snapshot  # the bars and state come as in a snapshot
    await socket.disconnect()


async def test_a_resume_point_past_the_log_does_not_hide_the_next_lines(cookies, bare_run, monkeypatch):
    monkeypatch.setattr(consumers, "CATCH_UP_SECONDS", 0.1)
    await write_log(bare_run.pk, ["one", "two"])
    socket = socket_for(bare_run, cookies["owner"], query="?after=999")
    assert (await socket.connect())[0]
    await socket.receive_from(timeout=2)
    await write_log(bare_run.pk, ["three"])
    assert await receive_until(socket, {3}, timeout=2) == [3]
    await socket.disconnect()
