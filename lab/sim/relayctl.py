"""The control program of a simulated relay (kind `ctl`), as a lab's vendor tool would be.

    python -m lab.sim.relayctl --socket /tmp/certlab-sim/<lab>/relays/ctl0.sock on 3
    python -m lab.sim.relayctl --socket ... status 3      # prints "on" or "off"

Exit 0 when the relay confirmed; 1 with the reason on stderr when it refused, did not answer
within --timeout, or is not there. The `command` power backend runs it (lab/drivers/power_command.py);
`certlab lab up` writes a wrapper next to the socket so an inventory names one program.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path


def ask(sock_path: Path, line: str, timeout: float) -> str:
    """One request line, one answer line; OSError/TimeoutError when the relay is absent or silent."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(sock_path))
        sock.sendall(line.encode() + b"\n")
        reply = sock.makefile("rb").readline(256).decode(errors="replace").strip()
    if not reply:
        raise TimeoutError("the relay closed the connection without an answer")
    return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relayctl", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True, help="the simulated relay's control socket")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the relay (default 3)")
    parser.add_argument("action", choices=["on", "off", "status"])
    parser.add_argument("channel", type=int)
    args = parser.parse_args(argv)
    word = {"on": "ON", "off": "OFF", "status": "STATE"}[args.action]
    try:
        reply = ask(args.socket, f"{word} {args.channel}", args.timeout)
    except TimeoutError:
        print(f"relayctl: relay at {args.socket} did not answer within {args.timeout} s", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"relayctl: relay at {args.socket} unreachable ({exc.strerror or exc})", file=sys.stderr)
        return 1
    if not reply.startswith("OK "):
        print(f"relayctl: relay refused {word} {args.channel}: {reply.removeprefix('ERR ')}", file=sys.stderr)
        return 1
    if args.action == "status":
        print(reply.removeprefix("OK ").lower())
    return 0


if __name__ == "__main__":
    sys.exit(main())
