"""The live view of one run over a websocket (``ws/runs/<run_id>/``), for the htmx websocket extension.

The database is the truth and the channel layer only a wake-up call (Redis channel layers drop messages
silently): on connect the consumer sends a snapshot (the run's state, every step's bar with its time left, the
log lines, and once the run has succeeded the panel leading to its views), then on each wake-up of the run's
group (``services.run_group``) AND on a short timer it re-reads the log lines numbered above the last one it sent
and the steps' progress, and sends what changed as HTML fragments whose ids htmx swaps out of band: the message
that carries a run's success swaps in the links to its Analysis, Ablation and Manipulation views. A lost
wake-up therefore delays a line by at most the timer, never loses it.

The page says which line it has (``?after=N``, added by ``static/js/run_log.js`` on every connect and reconnect),
so a socket that was down for a while gets every line written meanwhile, not only the last ones; a client that
does not say gets the last ``selectors.SNAPSHOT_LINES`` lines in place of its log. Redis being down (the channel
layer) costs the wake-ups only: the handshake, the timer and the lines come from the database.

The run is found only through ``analysis.runs.selectors`` on every read: a stranger or an anonymous client is closed
before the handshake, and someone who loses their membership is closed at the next read. Viewers receive
everything but cannot cancel (``{"action": "cancel"}``; editors and owners can).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.loader import render_to_string
from django.utils.html import escape

from projects.selectors import can_write

from analysis.runs import selectors, services

log = logging.getLogger(__name__)

CATCH_UP_SECONDS = 1.0  # the timer that makes up for lost wake-ups
REJOIN_SECONDS = 60.0  # the group is joined again this often: Redis may have restarted, or its membership expired
RESUME_BATCH = 500  # log lines per message when a client resumes after a gap
CLOSE_NOT_ALLOWED = 4403


def resume_point(query_string: bytes) -> int | None:
    """``?after=N`` in the socket's URL: the last log line the page already has (``static/js/run_log.js``); None
    when absent or not a whole number from 0 (the client then gets a snapshot)."""
    values = parse_qs(query_string.decode("latin-1")).get("after", [])
    return int(values[0]) if values and values[0].isdigit() else None


def _log_fragments(run, after_seq: int | None) -> tuple[list[str], int]:
    """The log lines to send and the new last seq: ``after_seq=None`` asks for a snapshot that replaces the
    page's log with its last lines; otherwise every line numbered above ``after_seq``, appended, in batches."""
    if after_seq is None:
        lines = list(selectors.last_log_lines(run))
        html = render_to_string("analysis/_log_lines.html", {"lines": lines, "oob": True, "replace": True})
        return [html], (lines[-1].seq if lines else 0)
    fragments, after_seq = [], min(after_seq, run.log_seq)  # a number from the future would hide later lines
    while lines := list(selectors.log_lines_after(run, after_seq, RESUME_BATCH)):
        fragments.append(render_to_string("analysis/_log_lines.html", {"lines": lines, "oob": True}))
        after_seq = lines[-1].seq
    return fragments, after_seq


def read_changes(user, run_id: int, after_seq: int | None, sent: dict) -> tuple[list[str], int] | None:
    """The fragments that changed since ``sent`` (the last fragment of each kind) and the new last log seq.
    ``after_seq=None`` asks for a snapshot. None: the run is not (or no longer) visible to ``user``."""
    try:
        run = selectors.run_for(user, run_id)
    except Http404:
        return None
    context = {"run": run, "oob": True, "can_write": can_write(user, run.project)}
    fragments = []
    parts = (("status", "analysis/_run_status.html", {"waiting_reason": selectors.waiting_reason(run)}),
             ("steps", "analysis/_run_steps.html", {"steps": selectors.steps_with_time_left(run)}),
             ("finished", "analysis/_run_finished.html", {}))
    for name, template, extra in parts:
        html = render_to_string(template, {**context, **extra})
        if html != sent.get(name):
            sent[name] = html
            fragments.append(html)
    log_fragments, after_seq = _log_fragments(run, after_seq)
    return fragments + log_fragments, after_seq


def cancel_for(user, run_id: int) -> str | None:
    """Cancel the run for ``user``; the refusal to show them, or None when it was cancelled."""
    try:
        services.cancel_run(user, selectors.run_for(user, run_id))
    except (PermissionDenied, services.RunStateError, Http404) as error:
        return getattr(error, "message", None) or str(error) or "You cannot cancel this run."
    return None


class RunConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        self.user = self.scope.get("user")
        self.last_seq: int | None = resume_point(self.scope.get("query_string", b""))
        self.sent: dict[str, str] = {}
        self.lock = asyncio.Lock()  # a wake-up and the timer must not both send the same lines
        self.timer = None
        self.refused = False
        first = await database_sync_to_async(read_changes)(self.user, self.run_id, self.last_seq, self.sent)
        if first is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        await self._join_group()
        await self.accept()
        fragments, self.last_seq = first
        await self._send(fragments)
        self.timer = asyncio.create_task(self._catch_up_forever())

    async def disconnect(self, code):
        if self.timer is not None:
            self.timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.timer
        if self.channel_layer is not None:
            with contextlib.suppress(Exception):  # Redis down: its membership expires by itself
                await self.channel_layer.group_discard(services.run_group(self.run_id), self.channel_name)

    async def _join_group(self) -> None:
        """Join the run's wake-up group. Redis down is not fatal: the timer reads the database meanwhile and
        the loop joins again (a restarted Redis has forgotten every group)."""
        if self.channel_layer is None:
            return
        try:
            await self.channel_layer.group_add(services.run_group(self.run_id), self.channel_name)
        except Exception as error:  # noqa: BLE001 — only the wake-ups are lost, never a line
            log.warning("run %s websocket: cannot join the wake-up group (%s); reading on the timer", self.run_id,
                        error)

    async def run_changed(self, event):
        """The group's wake-up (``{"type": "run.changed"}``, sent by the services after commit)."""
        await self.catch_up()

    async def receive(self, text_data=None, bytes_data=None):
        try:
            action = json.loads(text_data or "{}").get("action")
        except (ValueError, AttributeError):
            action = None
        if action != "cancel":
            return
        refusal = await database_sync_to_async(cancel_for)(self.user, self.run_id)
        if refusal:
            await self.send(text_data=f'<p id="run-message" class="message message--error" role="alert" '
                                      f'hx-swap-oob="true">{escape(refusal)}</p>')
        await self.catch_up()

    async def catch_up(self):
        if self.refused:
            return
        async with self.lock:
            changes = await database_sync_to_async(read_changes)(self.user, self.run_id, self.last_seq, self.sent)
            if changes is None:  # no longer a member (or the run is gone)
                self.refused = True
                await self.close(code=CLOSE_NOT_ALLOWED)
                return
            fragments, self.last_seq = changes
            await self._send(fragments)

    async def _catch_up_forever(self):
        since_join = 0.0
        while not self.refused:
            await asyncio.sleep(CATCH_UP_SECONDS)
            await self.catch_up()
            since_join += CATCH_UP_SECONDS
            if since_join >= REJOIN_SECONDS:
                since_join = 0.0
                await self._join_group()

    async def _send(self, fragments):
        if fragments:
            await self.send(text_data="\n".join(fragments))
