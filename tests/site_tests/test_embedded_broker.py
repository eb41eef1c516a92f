"""The embedded broker's transport (neurox_site/broker.py): a message file is written elsewhere and renamed into
the queue folder, so a consumer never reads a half-written (empty) message, which ended kombu's consumer."""

from __future__ import annotations

import builtins
from pathlib import Path

from kombu import Connection

from neurox_site import broker


def test_a_message_is_written_outside_the_queue_folder_and_arrives_whole(tmp_path, monkeypatch):
    messages, control = tmp_path / "broker" / "messages", tmp_path / "broker" / "control"
    messages.mkdir(parents=True)
    control.mkdir()
    written_in = []

    def spying_open(path, mode="r", *args, **kwargs):
        if "w" in mode:
            written_in.append(Path(path).parent)
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(broker, "open", spying_open, raising=False)
    options = {"data_folder_in": str(messages), "data_folder_out": str(messages), "control_folder": str(control)}
    with Connection("filesystem://", transport="neurox_site.broker:Transport", transport_options=options) as conn:
        queue = conn.SimpleQueue("realtime")
        for n in range(20):
            queue.put({"n": n, "words": ["a"] * 1000})
        assert written_in and set(written_in) == {tmp_path / "broker" / broker.STAGING}
        assert all(path.stat().st_size > 0 for path in messages.iterdir())
        received = []
        for _ in range(20):
            message = queue.get(timeout=1)
            message.ack()
            received.append(message.payload["n"])
        assert sorted(received) == list(range(20))  # (within one millisecond the transport's order is a uuid's)
        queue.close()
    assert not list((tmp_path / "broker" / broker.STAGING).iterdir())  # nothing left half-way


def test_the_embedded_settings_use_it():
    from django.conf import settings

    if getattr(settings, "REDIS_URL", None):
        return  # production settings: Redis is the broker
    assert settings.CELERY_BROKER_TRANSPORT == "neurox_site.broker:Transport"
