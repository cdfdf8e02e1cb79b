"""Two (or more) lab hosts on one machine, for the lab-host end-to-end tests and bench/labhosts.py.

A lab host is a network namespace `clh-<host>` with `lo` up and one veth to the root namespace,
whose root end is a port of a bridge holding 10.203.250.1/24 (the host's end is 10.203.250.<10+i>).
A `redis-server` this harness starts listens on the bridge address (and loopback), so every host
and the orchestrator use one broker URL. Inside each namespace run `certlab lab up --labhost H`
(the host's simulated benches: its relays on its own loopback, its benches' namespaces behind it)
and `certlab labhost serve --name H`, each in its own process group with a log file. The store is
one SQLite file in a shared folder (CERTLAB_DATA_DIR): one machine; a real lab uses PostgreSQL.

`partition(host, s)` sets the root end of the host's link down for s seconds (the host keeps
running and cannot reach the broker or the orchestrator), `kill_host(host)` SIGKILLs the serve
process group (the host's benches stay: they are the hardware). `close()` leaves no namespace,
link, redis or simulated process behind, also after a failure half-way through `start()`, and
says what it could not remove. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = "clhbr0"
SUBNET = "10.203.250"  # /24: the bridge is .1, lab host i (from 0) is .10+i
BROKER_ADDRESS = f"{SUBNET}.1"
START_TIMEOUT = 60.0  # s: lab up of one host, or a host's first heartbeat
STOP_GRACE = 5.0  # s: SIGTERM -> SIGKILL of a serve process group (its workers stop within it when idle)


def unavailable_reason() -> str | None:
    """Why lab hosts cannot be made here (None when they can): the tests skip with it."""
    if os.geteuid() != 0:
        return "lab hosts are network namespaces: run as root"
    for tool, package in (("ip", "iproute2"), ("redis-server", "redis-server")):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing (Debian package {package}, system-packages.txt)"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group led by proc, SIGKILL it after `grace` s; reaps the leader."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.1)
            if proc.poll() is not None and not _group_alive(proc.pid):
                return


def netns_pids(netns: str) -> list[int]:
    """Every process living in a named network namespace (`ip netns pids`)."""
    out = _ip("netns", "pids", netns, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


@dataclass
class Host:
    name: str
    index: int
    serve: subprocess.Popen | None = None

    @property
    def netns(self) -> str:
        return f"clh-{self.name}"

    @property
    def veth(self) -> str:
        """Root end of the host's link (at most 15 characters)."""
        return f"lhv-{self.name}"[:15]

    @property
    def address(self) -> str:
        return f"{SUBNET}.{10 + self.index}"


class LabHosts:
    """Redis + N lab hosts of one inventory on this machine; a context manager that always cleans up."""

    def __init__(self, inventory: Path, hosts: list[str], workdir: Path, *, redis_port: int = 0) -> None:
        self.inventory = inventory.resolve()
        self.workdir = workdir.resolve()
        self.hosts = {h: Host(h, i) for i, h in enumerate(hosts)}
        self.redis_port = redis_port or _free_port()
        self.redis: subprocess.Popen | None = None
        self.data_dir = self.workdir / "data"  # the shared store: one SQLite file (a real lab: PostgreSQL)
        self.log_dir = self.workdir / "logs"
        self._lab_up: set[str] = set()
        self._bridge = False

    # --- the environment every certlab process gets -----------------------------------------

    @property
    def broker_url(self) -> str:
        return f"redis://{BROKER_ADDRESS}:{self.redis_port}/0"

    def env(self, **extra: str) -> dict[str, str]:
        """certlab's environment with the broker and the shared store (for `certlab run` too)."""
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "CERTLAB_BROKER_URL": self.broker_url, "CERTLAB_DATA_DIR": str(self.data_dir),
                "PYTHONPATH": path, "COLUMNS": "160", **extra}

    def certlab(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lab.cli", *args]

    def in_host(self, host: str, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[host].netns, *cmd]

    # --- up ------------------------------------------------------------------------------------

    def __enter__(self) -> LabHosts:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Bridge, hosts' namespaces and links, redis, each host's lab, each host's serve; bounded."""
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        for folder in (self.data_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._make_network()
        self._start_redis()
        for host in self.hosts:
            self.lab_up(host)
        for host in self.hosts:
            self.serve(host)
        self.wait_serving(list(self.hosts))

    def _make_network(self) -> None:
        if not Path("/sys/class/net", BRIDGE).exists():
            _ip("link", "add", BRIDGE, "type", "bridge")
        self._bridge = True
        _ip("addr", "replace", f"{BROKER_ADDRESS}/24", "dev", BRIDGE)
        _ip("link", "set", BRIDGE, "up")
        for host in self.hosts.values():
            if not Path("/run/netns", host.netns).exists():
                _ip("netns", "add", host.netns)
            if not Path("/sys/class/net", host.veth).exists():
                _ip("link", "add", host.veth, "type", "veth", "peer", "name", "uplink", "netns", host.netns)
            _ip("link", "set", host.veth, "master", BRIDGE)
            _ip("link", "set", host.veth, "up")
            ns = ("-n", host.netns)
            _ip(*ns, "link", "set", "lo", "up")
            _ip(*ns, "addr", "replace", f"{host.address}/24", "dev", "uplink")
            _ip(*ns, "link", "set", "uplink", "up")

    def _start_redis(self) -> None:
        log = open(self.log_dir / "redis.log", "ab")  # noqa: SIM115 (closed in close())
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", BROKER_ADDRESS, "127.0.0.1", "--port", str(self.redis_port),
             "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", str(self.workdir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.redis.poll() is not None:
                raise RuntimeError(f"redis-server exited {self.redis.returncode}: see {self.log_dir / 'redis.log'}")
            with contextlib.suppress(OSError), socket.create_connection((BROKER_ADDRESS, self.redis_port), 0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer on {BROKER_ADDRESS}:{self.redis_port} within 15 s")

    def lab_up(self, host: str) -> None:
        """The host's simulated benches, brought up inside the host (`certlab lab up --labhost`)."""
        self._lab_up.add(host)
        cmd = self.in_host(host, self.certlab("lab", "up", "-i", str(self.inventory), "--labhost", host))
        proc = subprocess.run(cmd, cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=START_TIMEOUT)
        (self.log_dir / f"lab-up-{host}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"lab up --labhost {host} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-800:]}")

    def serve(self, host: str) -> subprocess.Popen:
        """`certlab labhost serve` inside the host, its own process group, output to logs/serve-<host>.log."""
        h = self.hosts[host]
        log = open(self.log_dir / f"serve-{host}.log", "ab")  # noqa: SIM115
        spool = self.workdir / "spool" / host
        spool.mkdir(parents=True, exist_ok=True)
        cmd = self.in_host(host, self.certlab("labhost", "serve", "-i", str(self.inventory), "--name", host,
                                              "--spool", str(spool)))
        h.serve = subprocess.Popen(cmd, cwd=ROOT, env=self.env(), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return h.serve

    def beats(self) -> dict[str, object]:
        """The hosts' heartbeats in the broker, by host name (lab.labhost.beats)."""
        from lab.inventory import load_inventory
        from lab.labhost.beats import read_beats
        from lab.labhost.broker import BrokerSettings, redis_client

        lab = load_inventory(self.inventory).lab
        client = redis_client(BrokerSettings(self.broker_url))
        try:
            return {h: beat for (_, h), beat in read_beats(client, lab).items()}
        finally:
            client.close()

    def wait_serving(self, hosts: list[str], timeout: float = START_TIMEOUT) -> None:
        """Until every host's heartbeat says it serves its benches; a serve that exits is said at once."""
        deadline = time.monotonic() + timeout
        while True:
            for host in hosts:
                serve = self.hosts[host].serve
                if serve is not None and serve.poll() is not None:
                    raise RuntimeError(f"labhost serve {host} exited {serve.returncode}: {self.tail(f'serve-{host}.log')}")
            beats = self.beats()
            if all(h in beats and getattr(beats[h], "serving", ()) and not beats[h].lost() for h in hosts):  # type: ignore[attr-defined]
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"lab hosts {hosts} not serving after {timeout:.0f} s; "
                                   + "; ".join(f"{h}: {self.tail(f'serve-{h}.log')}" for h in hosts))
            time.sleep(0.2)

    def tail(self, log: str, chars: int = 600) -> str:
        with contextlib.suppress(OSError):
            return (self.log_dir / log).read_text(errors="replace")[-chars:].replace("\n", " | ")
        return ""

    # --- faults ------------------------------------------------------------------------------

    def cut(self, host: str) -> None:
        """Unplug the host's network: the root end of its link goes down."""
        _ip("link", "set", self.hosts[host].veth, "down")

    def mend(self, host: str) -> None:
        _ip("link", "set", self.hosts[host].veth, "up")

    def partition(self, host: str, seconds: float) -> None:
        """The host is cut off for `seconds`, then plugged back in (blocks meanwhile)."""
        self.cut(host)
        try:
            time.sleep(seconds)
        finally:
            self.mend(host)

    def kill_host(self, host: str) -> None:
        """The host dies: SIGKILL of its serve process group (workers and their pytest included)."""
        serve = self.hosts[host].serve
        if serve is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            serve.wait(timeout=5)

    # --- down ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Everything down: serve, the hosts' labs, leftover processes, namespaces, links, redis."""
        errors: list[str] = []
        serves = [h.serve for h in self.hosts.values() if h.serve is not None]
        for serve in serves:  # all at once: each stops its workers in parallel with the others
            with contextlib.suppress(ProcessLookupError):
                os.killpg(serve.pid, signal.SIGTERM)
        for serve in serves:
            stop_group(serve, STOP_GRACE)
        downs = {}
        for name in sorted(self._lab_up):
            if Path("/run/netns", self.hosts[name].netns).exists():
                cmd = self.in_host(name, self.certlab("lab", "down", "-i", str(self.inventory), "--labhost", name))
                downs[name] = subprocess.Popen(cmd, cwd=ROOT, env=self.env(), stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True)
        for name, proc in downs.items():
            try:
                text, _ = proc.communicate(timeout=60)
                if proc.returncode != 0:
                    errors.append(f"lab down --labhost {name}: {text[-400:]}")
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                errors.append(f"lab down --labhost {name} did not end within 60 s")
        self._lab_up.clear()
        for host in self.hosts.values():  # whatever still lives in a host (an orphaned worker) dies with it
            if Path("/run/netns", host.netns).exists():
                for _ in range(20):
                    pids = netns_pids(host.netns)
                    if not pids:
                        break
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    time.sleep(0.1)
                _ip("netns", "del", host.netns, check=False)
            if Path("/sys/class/net", host.veth).exists():
                _ip("link", "del", host.veth, check=False)
        if self._bridge and Path("/sys/class/net", BRIDGE).exists():
            _ip("link", "del", BRIDGE, check=False)
        if self.redis is not None:
            stop_group(self.redis, 5.0)
            self.redis = None
        left = self.leftovers()
        if errors or left:
            raise RuntimeError("lab hosts not cleanly down: " + "; ".join(errors + left))

    def leftovers(self) -> list[str]:
        """What close() should have removed and did not (empty = clean)."""
        left = [f"netns {h.netns}" for h in self.hosts.values() if Path("/run/netns", h.netns).exists()]
        left += [f"link {n}" for n in [BRIDGE, *(h.veth for h in self.hosts.values())] if Path("/sys/class/net", n).exists()]
        from lab.inventory import load_inventory
        from lab.sim.lab import SimLab, processes_mentioning

        try:
            sim = SimLab(load_inventory(self.inventory))
            left += [f"netns {b.network.netns}" for b in sim.benches.values()
                     if b.network.netns and Path("/run/netns", b.network.netns).exists()]
            left += [f"process {p}" for p in processes_mentioning(sim.marker)]
        except Exception as exc:  # noqa: BLE001 - the check itself must not hide the teardown
            left.append(f"inventory {self.inventory}: {exc}")
        left += [f"process {p}" for p in processes_mentioning(f"{self.workdir}/")]
        left += [f"redis pid {p}" for p in processes_mentioning(f":{self.redis_port}") if _is_redis(p)]
        return left


def _is_redis(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False
