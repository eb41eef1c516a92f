"""The Redis channel layer as the live log needs it: a blocking read that outlasts its own wait, and an outage
of Redis that delays wake-ups instead of ending every websocket.

- **The socket timeout.** channels-redis waits for a message with ``BZPOPMIN … 5`` (``brpop_timeout``) in a loop.
  redis-py 8 gives every connection a 5 s ``socket_timeout`` by default, so an idle wait raced the client's own
  timeout and lost: ``TimeoutError`` ended the consumer and its websocket every ~5 s (channels_redis #422).
  This layer gives each host a socket timeout well above the blocking wait, unless its settings name one.
- **Redis down.** The consumers read the database (the truth) on a timer, so a lost wake-up costs at most that
  timer. What must not happen is the layer's error killing the websocket: ``receive`` waits and tries again
  while Redis cannot be reached, and ``group_add`` / ``group_discard`` / ``group_send`` failures are the
  caller's to soften (``analysis.runs.consumers``).
"""

from __future__ import annotations

import asyncio
import logging

import redis.exceptions
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

# What a lost or refused connection to Redis raises through redis-py's asyncio client.
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    """channels-redis' layer with a socket timeout above its blocking read, whose ``receive`` outlives a Redis
    outage (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A read may block for brpop_timeout plus a margin for a busy server; connecting gives up after 5 s
        # (a dead Redis is then retried by receive, not waited on).
        self.hosts = [{"socket_timeout": self.brpop_timeout + 10, "socket_connect_timeout": 5, **host}
                      for host in self.hosts]

    async def receive(self, channel):
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                message = await super().receive(channel)
            except UNREACHABLE as error:
                if delay == RETRY_FIRST_SECONDS:
                    logger.warning("Channel layer: Redis unreachable (%s); wake-ups wait, consumers read the "
                                   "database on their timer.", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            if delay != RETRY_FIRST_SECONDS:
                logger.info("Channel layer: Redis reachable again.")
            return message
