"""A tiny loopback TCP server for the tests of the lab's protocol clients (logins, network probes)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


def serve_once(handler: Callable[[socket.socket], None], connections: int = 1) -> int:
    """Serve `connections` connections on 127.0.0.1 with `handler`, then close; returns the port.

    Bounded: the server gives up after 10 s without a connection, each connection after 5 s idle.
    """
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(10)

    def run() -> None:
        for _ in range(connections):
            try:
                conn, _ = srv.accept()
            except OSError:
                break
            with conn:
                conn.settimeout(5)
                try:
                    handler(conn)
                except OSError:
                    pass
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]
