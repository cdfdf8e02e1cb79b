"""The booking API under uvicorn on loopback: throughput and latency of a booking read and create.

Starts `certlab serve` on 127.0.0.1 (an ephemeral port) over a fresh SQLite store in a temporary
folder, with the rate limit lifted (the limiter is per token; this measures the service, not the
limit), adds a manufacturer with `certlab users add`, makes a product (TH-100) and a booking with
the real inventory/products/TH-100 ICS and IXIT, then drives N keep-alive clients (threads with
`http.client`) bounded by a request count AND a time limit per phase:
  (a) GET  /api/v1/bookings/{id}   (b) POST /api/v1/bookings
It does so once per `--workers` count (default 1 then 2: `certlab serve --workers N`, a fresh
server and store each), side by side in one run. Prints requests/s and latency p50/p99/max per
phase, the read rate of each worker count against one worker's, and whether the aim is met
(reads: at least 1,000/s with p99 under 50 ms). Printed, never asserted. The load generator
shares this machine's CPUs with the server, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import Load, free_port, median, pct, wait_health  # noqa: E402

PREFIX = "/api/v1"
PRODUCT = ROOT / "inventory" / "products" / "TH-100"
START_TIMEOUT_S = 120.0  # a busy machine imports the app slowly
REQUEST_TIMEOUT_S = 30.0
AIM_READS_PER_S, AIM_P99_MS = 1000.0, 50.0


def certlab(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"api bench: certlab {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def request(conn: http.client.HTTPConnection, method: str, path: str, token: str,
            body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def wait_up(port: int, server: subprocess.Popen) -> None:
    wait_health(port, server, timeout_s=START_TIMEOUT_S, who="api bench", path=f"{PREFIX}/health")


def wait_workers(port: int, server: subprocess.Popen, workers: int) -> None:
    """Until each of the server's `workers` processes has answered /health (bounded): the last to
    import the app would otherwise get none of the keep-alive clients. Which worker answered is
    read from /proc (the process holding the server's end of the connection)."""
    deadline = time.monotonic() + START_TIMEOUT_S * 2
    answered: set[int] = set()
    held: list[http.client.HTTPConnection] = []
    try:
        while time.monotonic() < deadline:
            children = {int(p) for task in Path(f"/proc/{server.pid}/task").iterdir()
                        for p in (task / "children").read_text().split()}
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            held.append(conn)
            conn.request("GET", f"{PREFIX}/health")
            conn.getresponse().read()
            inode = next((f.split()[9] for f in Path("/proc/net/tcp").read_text().splitlines()[1:]
                          if f.split()[1] == f"0100007F:{port:04X}"
                          and f.split()[2] == f"0100007F:{conn.sock.getsockname()[1]:04X}"), None)
            for pid in children:
                try:
                    if any(os.readlink(fd) == f"socket:[{inode}]" for fd in Path(f"/proc/{pid}/fd").iterdir()):
                        answered.add(pid)
                except OSError:
                    continue
            if len(answered) >= workers:
                return
            if len(held) > 20:
                held.pop(0).close()
            time.sleep(0.05)
    finally:
        for conn in held:
            conn.close()
    raise SystemExit(f"api bench: only {len(answered)} of {workers} workers answered within {START_TIMEOUT_S * 2:.0f} s")


@dataclass
class Phase(Load):
    """One load phase: `clients` threads share a budget of `count` requests and a deadline."""

    name: str
    method: str
    path: str
    body: bytes | None
    want: int
    count: int
    max_seconds: float

    def run(self, port: int, token: str, clients: int) -> None:
        self.drive(port, clients, lambda conn: request(conn, self.method, self.path, token, self.body)[0], self.want,
                   REQUEST_TIMEOUT_S)

    def line(self) -> str:
        lat = [x * 1e3 for x in self.latencies] or [float("nan")]
        rate = len(self.latencies) / max(self.wall, 1e-9)
        return (f"{self.name}: requests={len(self.latencies)} wall_s={self.wall:.2f} req_per_s={rate:.0f} "
                f"p50_ms={median(lat):.2f} p99_ms={pct(lat, 99):.2f} max_ms={max(lat):.2f} "
                f"errors={self.errors or 0}")

    @property
    def rate(self) -> float:
        return len(self.latencies) / max(self.wall, 1e-9)

    @property
    def p99_ms(self) -> float:
        return pct(self.latencies, 99) * 1e3 if self.latencies else float("inf")


def ab_reads(port: int, token: str, path: str, clients: int, count: int, max_s: float) -> str:
    """The same read driven by ApacheBench: bounded by -n and -t; its 99th percentile from its table."""
    exe = shutil.which("ab")
    if exe is None:
        return "ab    (not installed: apt-get install apache2-utils)"
    proc = subprocess.run([exe, "-q", "-k", "-c", str(clients), "-t", str(int(max_s)), "-n", str(count),
                           "-H", f"Authorization: Bearer {token}", f"http://127.0.0.1:{port}{path}"],
                          capture_output=True, text=True, timeout=max_s + 60, stdin=subprocess.DEVNULL)
    rate = re.search(r"Requests per second:\s+([0-9.]+)", proc.stdout)
    p50 = re.search(r"^\s+50%\s+([0-9]+)", proc.stdout, re.M)
    p99 = re.search(r"^\s+99%\s+([0-9]+)", proc.stdout, re.M)
    failed = re.search(r"Failed requests:\s+([0-9]+)", proc.stdout)
    non2xx = re.search(r"Non-2xx responses:\s+([0-9]+)", proc.stdout)
    if not rate or not p99:
        return f"ab    failed: {proc.stderr.strip()[-200:] or proc.stdout.strip()[-200:]}"
    errors = int(failed.group(1)) + (int(non2xx.group(1)) if non2xx else 0) if failed else -1
    return (f"read  GET /api/v1/bookings/{{id}} (ApacheBench, c={clients}): req_per_s={float(rate.group(1)):.0f} "
            f"p50_ms={p50.group(1) if p50 else '?'} p99_ms={p99.group(1)} errors={errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--reads", type=int, default=5000, help="GET /bookings/{id} requests (at most)")
    parser.add_argument("--creates", type=int, default=1000, help="POST /bookings requests (at most)")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time bound of each phase")
    parser.add_argument("--warmup", type=int, default=200, help="reads before measuring (not counted)")
    parser.add_argument("--workers", default="1,2",
                        help="server worker counts to measure one after the other (certlab serve --workers N)")
    parser.add_argument("--baseline", action="store_true",
                        help="also measure GET /health (no token) and GET /me (token lookup only), to see "
                             "where a read's time goes")
    parser.add_argument("--ab", action="store_true",
                        help="also drive the reads with ApacheBench (apache2-utils), a C client that leaves "
                             "the CPUs to the server: the server's own capacity on this 2-core machine")
    args = parser.parse_args()
    clients = max(1, min(args.clients, 256))
    max_s = max(1.0, min(args.max_seconds, 600.0))

    try:
        counts = [int(x) for x in args.workers.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"api bench: --workers {args.workers}: give worker counts separated by commas, e.g. 1,2") from None
    if not counts or any(not 1 <= n <= 32 for n in counts):
        raise SystemExit(f"api bench: --workers {args.workers}: each count from 1 to 32, e.g. 1,2")
    results = [measure(args, n, clients, max_s) for n in counts]
    for res in results:
        print(f"--- uvicorn ({res.workers} worker{'s' if res.workers > 1 else ''}) on 127.0.0.1, SQLite store, "
              f"clients={clients} (http.client keep-alive threads), cpus={os.cpu_count()}, bounds: "
              f"reads<={args.reads} creates<={args.creates} and {max_s:g} s per phase")
        for phase in res.baselines:
            print(phase.line())
        print(res.reads.line())
        if res.ab_line:
            print(res.ab_line)
        print(res.creates.line())
    base = results[0]
    for res in results:
        met = res.reads.rate >= AIM_READS_PER_S and res.reads.p99_ms < AIM_P99_MS and not res.reads.errors
        print(f"workers={res.workers}: reads {res.reads.rate:.0f}/s p99 {res.reads.p99_ms:.1f} ms "
              f"(x{res.reads.rate / max(base.reads.rate, 1e-9):.2f} of {base.workers} worker{'s' if base.workers > 1 else ''}), "
              f"creates {res.creates.rate:.0f}/s; >= {AIM_READS_PER_S:.0f}/s and p99 < {AIM_P99_MS:.0f} ms: "
              f"{'met' if met else 'not met'}")


@dataclass
class Measured:
    workers: int
    reads: Phase
    creates: Phase
    baselines: list[Phase]
    ab_line: str | None


def measure(args: argparse.Namespace, workers: int, clients: int, max_s: float) -> Measured:
    """One server with `workers` processes over a fresh store: its phases."""
    with tempfile.TemporaryDirectory(prefix="certlab-bench-api-") as tmp:
        env = {**os.environ, "CERTLAB_DATA_DIR": tmp, "CERTLAB_REPORTS_DIR": str(Path(tmp) / "reports"),
               "CERTLAB_INVENTORY": str(ROOT / "inventory" / "sim.yaml"),
               "CERTLAB_RATE_PER_SECOND": "1e6", "CERTLAB_RATE_BURST": "1e6"}
        env.pop("CERTLAB_DATABASE_URL", None)
        token = certlab(env, "users", "add", "bench-maker", "--role", "manufacturer",
                        "--org", "Bench Devices").strip().splitlines()[-1]
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "lab.cli", "serve", "--host", "127.0.0.1",
                                   "--port", str(port), "--workers", str(workers)], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            wait_up(port, server)
            if workers > 1:
                wait_workers(port, server, workers)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
            status, raw = request(conn, "POST", f"{PREFIX}/products", token, json.dumps(
                {"model": "TH-100", "name": "Smart thermostat", "vendor": "Certlab Sim Devices"}).encode())
            if status != 201:
                raise SystemExit(f"api bench: POST /products answered {status}: {raw[:300]!r}")
            product_id = json.loads(raw)["id"]
            booking = json.dumps({"product_id": product_id, "firmware_version": "1.4.0", "edition": "v2",
                                  "ics": (PRODUCT / "ics.yaml").read_text(),
                                  "ixit": (PRODUCT / "ixit.yaml").read_text()}).encode()
            status, raw = request(conn, "POST", f"{PREFIX}/bookings", token, booking)
            if status != 201:
                raise SystemExit(f"api bench: POST /bookings answered {status}: {raw[:300]!r}")
            booking_id = json.loads(raw)["id"]
            conn.close()

            read = f"{PREFIX}/bookings/{booking_id}"
            Phase("warmup", "GET", read, None, 200, max(0, min(args.warmup, 10_000)), max_s).run(port, token, clients)
            baselines = [Phase(name, "GET", f"{PREFIX}{path}", None, 200, max(1, min(args.reads, 1_000_000)), max_s)
                         for name, path in (("floor GET /api/v1/health (no token)", "/health"),
                                            ("token GET /api/v1/me (token lookup)", "/me"))] if args.baseline else []
            for phase in baselines:
                phase.run(port, token, clients)
            reads = Phase("read  GET /api/v1/bookings/{id}", "GET", read, None, 200,
                          max(1, min(args.reads, 1_000_000)), max_s)
            reads.run(port, token, clients)
            ab_line = ab_reads(port, token, read, clients, args.reads, max_s) if args.ab else None
            creates = Phase("create POST /api/v1/bookings", "POST", f"{PREFIX}/bookings", booking, 201,
                            max(1, min(args.creates, 100_000)), max_s)
            creates.run(port, token, clients)
        finally:
            server.terminate()  # uvicorn's supervisor stops its workers
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)  # the server and its workers (their own session)
                server.wait(10)

    return Measured(workers, reads, creates, baselines, ab_line)


if __name__ == "__main__":
    main()
