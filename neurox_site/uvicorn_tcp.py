"""``python -m neurox_site.uvicorn_tcp …``: the ``uvicorn`` command (every option the same), with Nagle's
algorithm off on the connections of a socket it binds for ``--workers`` processes.

uvicorn 0.54 makes that shared listening socket with ``proto`` 0; accepted connections inherit it, and asyncio
turns Nagle off only on sockets that say ``IPPROTO_TCP``. A response's headers and body go out as two writes, so
on a kept-alive connection (browsers, or a proxy that pools its upstream connections) the body waited for the
client's delayed ACK: +44 ms on every request after a connection's first, measured here (uvicorn issue #3149,
open). Linux passes a listening socket's TCP_NODELAY on to the connections it accepts, which is what this sets.
The single-process command (no ``--workers``) binds through asyncio and is not affected.
"""

from __future__ import annotations

import socket

import uvicorn.config

_bind_socket = uvicorn.config.Config.bind_socket


def bind_socket(self) -> socket.socket:
    sock = _bind_socket(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


uvicorn.config.Config.bind_socket = bind_socket

if __name__ == "__main__":
    from uvicorn.main import main

    main()
