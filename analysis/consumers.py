"""The live view of one run over a websocket (``ws/runs/<run_id>/``), for the htmx websocket extension.

The database is the truth and the channel layer only a wake-up call (Redis channel layers drop messages
silently): on connect the consumer sends a snapshot (the run's state, every step's bar with its time left, the
last log lines, and once the run has succeeded the panel leading to its views), then on each wake-up of the run's
group (``services.run_group``) AND on a short timer it re-reads the log lines numbered above the last one it sent
and the steps' progress, and sends what changed as HTML fragments whose ids htmx swaps out of band: the message
that carries a run's success swaps in the links to its Analysis, Ablation and Manipulation views. A lost
wake-up therefore delays a line by at most the timer, never loses it.

The run is found only through ``analysis.selectors`` on every read: a stranger or an anonymous client is closed
before the handshake, and someone who loses their membership is closed at the next read. Viewers receive
everything but cannot cancel (``{"action": "cancel"}``; editors and owners can).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import escape

from projects.selectors import can_write

from . import selectors, services
from .models import StepState

CATCH_UP_SECONDS = 1.0  # the timer that makes up for lost wake-ups
SNAPSHOT_LINES = 200  # log lines sent on connect; older ones are in the API (…/logs/?after=)
CLOSE_NOT_ALLOWED = 4403


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def steps_with_time_left(run, now=None) -> list:
    """The run's steps (``selectors.steps_of``), each with ``time_left``: for a running step that has counted
    some of its units, the rest at the rate it has gone since it started ("about 3 min left"), else ""."""
    now = now or timezone.now()
    steps = list(selectors.steps_of(run))
    for step in steps:
        step.time_left = ""
        if step.state == StepState.RUNNING and step.started_at and 0 < step.done < step.total:
            elapsed = (now - step.started_at).total_seconds()
            if elapsed > 0:
                step.time_left = f"about {_duration_text((step.total - step.done) * elapsed / step.done)} left"
    return steps


def read_changes(user, run_id: int, after_seq: int | None, sent: dict) -> tuple[list[str], int] | None:
    """The fragments that changed since ``sent`` (the last fragment of each kind) and the new last log seq.
    ``after_seq=None`` asks for a snapshot. None: the run is not (or no longer) visible to ``user``."""
    try:
        run = selectors.run_for(user, run_id)
    except Http404:
        return None
    context = {"run": run, "oob": True, "can_write": can_write(user, run.project)}
    fragments = []
    for name, template, extra in (("status", "analysis/_run_status.html", {"waiting_reason": selectors.waiting_reason(run)}),
                                  ("steps", "analysis/_run_steps.html", {"steps": steps_with_time_left(run)}),
                                  ("finished", "analysis/_run_finished.html", {})):
        html = render_to_string(template, {**context, **extra})
        if html != sent.get(name):
            sent[name] = html
            fragments.append(html)
    if after_seq is None:
        lines = list(selectors.log_lines_after(run, max(run.log_seq - SNAPSHOT_LINES, 0), SNAPSHOT_LINES))
        fragments.append(render_to_string("analysis/_log_lines.html", {"lines": lines, "oob": True,
                                                                       "replace": True}))
        after_seq = lines[-1].seq if lines else 0
    else:
        lines = list(selectors.log_lines_after(run, after_seq))
        if lines:
            fragments.append(render_to_string("analysis/_log_lines.html", {"lines": lines, "oob": True}))
            after_seq = lines[-1].seq
    return fragments, after_seq


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
        self.last_seq: int | None = None
        self.sent: dict[str, str] = {}
        self.lock = asyncio.Lock()  # a wake-up and the timer must not both send the same lines
        self.timer = None
        self.refused = False
        first = await database_sync_to_async(read_changes)(self.user, self.run_id, None, self.sent)
        if first is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        if self.channel_layer is not None:
            await self.channel_layer.group_add(services.run_group(self.run_id), self.channel_name)
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
            await self.channel_layer.group_discard(services.run_group(self.run_id), self.channel_name)

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
        while not self.refused:
            await asyncio.sleep(CATCH_UP_SECONDS)
            await self.catch_up()

    async def _send(self, fragments):
        if fragments:
            await self.send(text_data="\n".join(fragments))
