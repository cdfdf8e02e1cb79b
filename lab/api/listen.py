"""Where `certlab serve` listens, checked before anything starts.

`--port 99999999` used to print an address and serve on some other port (the kernel truncates),
`--port -1` ended in uvicorn's exit 3, a host that is not this machine's in a traceback. Each is
one line naming the option and the fix (exit 2) before the app or the store is made.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from lab.errors import CertlabError

MIN_PORT, MAX_PORT = 1, 65535  # port 0 ("any free port") is refused: the address printed would be wrong
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def check_port(port: int) -> int:
    if not MIN_PORT <= port <= MAX_PORT:
        raise CertlabError(f"--port {port}: not a TCP port; fix: give a number from {MIN_PORT} to {MAX_PORT} "
                           f"(e.g. --port 8303)")
    return port


def check_host(host: str) -> str:
    """An IP address or a host name (RFC 1123); an IPv6 address may be written in brackets."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    labels = name.rstrip(".").split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        shown = host if host.isprintable() else repr(host)
        raise CertlabError(f"--host {shown}: not an IP address or host name; fix: give one of this machine's "
                           f"addresses, e.g. --host 127.0.0.1")
    return name


def check_listen(host: str, port: int) -> None:
    """Bind (and release) a socket where the server will listen: a name that does not resolve, an
    address not on this machine, a port in use or a privileged port fail here with their reason."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise CertlabError(f"--host {host}: cannot resolve it ({exc}); fix: give one of this machine's addresses, "
                           f"e.g. --host 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        try:
            sock.bind(address)
        except OSError as exc:
            raise CertlabError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); fix: give a free "
                               f"port and one of this machine's addresses") from None


def check_serve_options(host: str, port: int) -> str:
    """The host to give uvicorn, once the host, the port and the pair are checked."""
    check_port(port)
    name = check_host(host)
    check_listen(name, port)
    return name
