"""The embedded broker: kombu's filesystem transport with message files that appear whole.

kombu's filesystem transport creates a message file and then writes into it, while a consumer polling the same
folder moves and reads any file it lists, without the writer's lock: it can read an empty message, and the JSON
error ends the worker's consumer (kombu issue #1551, open). Seen here on 2026-12-05: the embedded realtime worker
died during a burst of manipulation requests, and the site said no realtime worker was running. Here a message
is written under a temporary name in a sibling folder consumers never read, then renamed into the queue folder
(one atomic step on one filesystem). Selected with ``CELERY_BROKER_TRANSPORT`` in the settings.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

STAGING = "staging"  # beside data_folder_out


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        staging = os.path.join(os.path.dirname(os.path.abspath(self.data_folder_out)), STAGING)
        partial = os.path.join(staging, name)
        try:
            os.makedirs(staging, exist_ok=True)
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add message {name!r} to {self.data_folder_out!r}") from exc


class Transport(filesystem.Transport):
    Channel = Channel
