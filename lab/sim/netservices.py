"""Small unauthenticated network services of the simulated TH-100: SSDP discovery, and the flaws'
firmware-upload web page.

The SSDP responder answers M-SEARCH requests sent to the device's address (udp/1900; IXIT 15-Intf
`discovery`, allowed to disclose the model). It never sends on its own, so captures of other
test cases do not see it. The `verbose_discovery` flaw adds the serial number, MAC address and
firmware version to the answer; `undocumented_update_service` adds a web server with a firmware
upload form (tcp/8080) that no IXIT list mentions.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

log = logging.getLogger("certlab.sim.netservices")

SSDP_PORT = 1900
FWUPLOAD_PORT = 8080
MAX_REQUEST = 4096


def ssdp_answer(*, model: str, usn: str, extra: dict[str, str]) -> bytes:
    """The M-SEARCH answer (UPnP Device Architecture 1.1, 1.3.3)."""
    lines = ["HTTP/1.1 200 OK", "CACHE-CONTROL: max-age=1800", "EXT:", "ST: upnp:rootdevice",
             f"USN: uuid:{usn}::upnp:rootdevice", f"SERVER: Linux UPnP/1.1 {model}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def start_ssdp(address: str, answer: Callable[[], bytes], port: int = SSDP_PORT) -> bool:
    """Answer M-SEARCH datagrams on (address, port); False if the port cannot be bound."""
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, port))
    except OSError:
        log.exception("ssdp responder failed to bind")
        return False

    def serve() -> None:
        while True:
            try:
                data, peer = sock.recvfrom(MAX_REQUEST)
                if data.startswith(b"M-SEARCH ") and b"ssdp:discover" in data:
                    sock.sendto(answer(), peer)
            except OSError:
                return

    threading.Thread(target=serve, name="ssdp", daemon=True).start()
    return True


FWUPLOAD_PAGE = (b"HTTP/1.0 200 OK\r\nServer: fwupd-lite/0.3\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
                 b"<html><head><title>Firmware upload</title></head><body><h1>Firmware upgrade</h1>"
                 b"<form method=post action=/upload enctype=multipart/form-data><input type=file name=image>"
                 b"<input type=submit value=Flash></form></body></html>\r\n")


def start_fwupload(address: str, port: int = FWUPLOAD_PORT) -> bool:
    """The `undocumented_update_service` flaw: a web page taking firmware images, no login (answers any request)."""
    try:
        srv = socket.create_server((address, port), reuse_port=False)
    except OSError:
        log.exception("firmware upload service failed to bind")
        return False
    slots = threading.BoundedSemaphore(4)

    def serve(conn: socket.socket) -> None:
        try:
            conn.settimeout(2.0)
            data = b""
            try:
                while b"\r\n\r\n" not in data and b"\n" not in data[-1:] and len(data) < MAX_REQUEST:
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            conn.sendall(FWUPLOAD_PAGE)
        except OSError:
            pass
        finally:
            conn.close()
            slots.release()

    def accept() -> None:
        while True:
            slots.acquire()
            try:
                conn, _ = srv.accept()
            except OSError:
                slots.release()
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, name="fwupload", daemon=True).start()
    return True
