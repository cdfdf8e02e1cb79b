"""The lab inventory: one Ansible YAML inventory file describing every bench.

The same file feeds `ansible-inventory`/ansible-runner (hosts, ansible_* vars) and certlab (the
`certlab:` host variable of each bench). It is validated into typed models up front, so a typo
is reported once, with file, bench, field and fix, before any hardware is touched.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from lab.drivers.registry import PowerConfigBase, PowerConfigError, PowerRegistry
from lab.errors import InventoryError
from lab.flaws import FLAWS, LAB_FAULTS
from lab.secrets import SecretRef
from lab.yamlfile import read_yaml


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScpiPowerConfig(PowerConfigBase):
    """A SCPI switch or power supply reached through a pyvisa resource string."""

    driver: Literal["scpi"]
    resource: str
    channel: int = Field(ge=1, le=9999)  # switch units number slot+channel, e.g. 101
    dialect: Literal["route", "output"] = "route"
    timeout: float = Field(default=2.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)

    @field_validator("resource")
    @classmethod
    def _visa_resource(cls, value: str) -> str:
        if "::" not in value:
            raise ValueError("not a VISA resource string; write e.g. TCPIP::192.0.2.10::5025::SOCKET")
        return value


class RelayBoardPowerConfig(PowerConfigBase):
    """An LCUS-style USB relay board on a serial line."""

    driver: Literal["relay_board"]
    url: str
    channel: int = Field(ge=1, le=16)
    baud: int = Field(default=9600, gt=0)
    timeout: float = Field(default=2.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)


# A bench's `power:` block: validated by the model of the backend its `driver` names (the
# `certlab.power` entry points, lab/drivers/registry.py), so plugins bring their own fields.
PowerConfig = SerializeAsAny[PowerConfigBase]


class ConsoleConfig(_Model):
    """A serial console and the product's prompts (from the manufacturer's IXIT, not guessed)."""

    url: str
    baud: int = Field(default=115200, gt=0)
    boot_banner: str = r"login:"
    login_prompt: str = r"login:\s*$"
    password_prompt: str = r"[Pp]assword:\s*$"
    shell_prompt: str = r"[#$]\s*$"
    login_incorrect: str = r"Login incorrect"
    boot_timeout: float = Field(default=60.0, gt=0, le=600)
    # How long the product may take to answer a line typed at its prompt (IXIT); a test's
    # console wait that runs out names this field, so a slow product is not called silent.
    timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("boot_banner", "login_prompt", "password_prompt", "shell_prompt", "login_incorrect")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        return value


class NetworkConfig(_Model):
    """Where the DUT is on the lab network, and for simulated benches its network namespace."""

    address: str
    netns: str | None = None
    interface: str | None = None
    gateway: str | None = None
    prefix: int = Field(default=24, ge=8, le=32)

    @field_validator("address", "gateway")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value


class SSHConfig(_Model):
    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)
    password: SecretRef | None = None
    timeout: float = Field(default=10.0, gt=0, le=120)


class DutConfig(_Model):
    """The sample on the bench, as received: a certifier traces every verdict back to it."""

    model: str
    serial: str
    firmware: str
    mac: str | None = None
    label_password: SecretRef | None = None
    pairing_code: SecretRef | None = None  # the label's code that pairs the sample to an account of its service
    # the sample's intake, for the test report (ISO/IEC 17025 7.8.2.1: date of receipt, condition)
    received_on: date | None = None
    condition: str | None = Field(default=None, max_length=500)

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", value):
            raise ValueError("not a MAC address; write six hex pairs like 02:00:00:00:01:01")
        return value


OFF_THE_SHELF_FLAWS = {"universal_default_password", "open_debug_service", "unauthenticated_console",
                       "cleartext_telnet_login"}  # busybox telnetd -l /bin/login


_HOST_PORT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?:[0-9]{1,5}$")


class HttpResource(_Model):
    """How the lab reaches the manufacturer's hosts the IXIT names (its site, its app's service).

    A real lab usually leaves `connect_to` empty (DNS) and `ca_file` unset (the system's trust
    store); the simulated lab maps the product's names to the bench's simulated cloud.
    """

    connect_to: dict[str, str] = {}  # "name:port" -> "address:port", like curl --connect-to
    ca_file: str | None = None  # PEM bundle to trust instead of the system store (inventory-relative)
    timeout: float = Field(default=10.0, gt=0, le=120)  # connect, and each answer, in seconds
    # an https URL the lab trusts to be up: when it answers, the lab's own way out works, so a site
    # that does not answer is the product's finding; unset, such failures stay INCONCLUSIVE
    path_check: str | None = None
    max_redirects: int = Field(default=5, ge=0, le=20)

    @field_validator("connect_to")
    @classmethod
    def _pairs(cls, value: dict[str, str]) -> dict[str, str]:
        for name, target in value.items():
            for part in (name, target):
                if not _HOST_PORT.match(part) or not 1 <= int(part.rsplit(":", 1)[1]) <= 65535:
                    raise ValueError(f"{part!r}: write host:port pairs, e.g. {{\"example.com:443\": \"10.0.0.5:8443\"}}")
        return value

    @field_validator("path_check")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("write a http(s) URL the lab trusts to be up, e.g. https://www.etsi.org/")
        return value


class WebResource(HttpResource):
    """The manufacturer's public web pages as a bench reaches them (5.2-1-2, 5.3-13-2, 5.3-14-2)."""

    max_page_kib: int = Field(default=2048, ge=1, le=65536)


class ServiceAccount(_Model):
    user: str = Field(min_length=1, max_length=254)
    password: SecretRef


class ServiceResource(HttpResource):
    """The product's associated service (its app's API) as a bench reaches it (5.3-6, 5.11-2, 6-2, 6-3)."""

    # a test account the manufacturer gave the lab; needed only when the IXIT says signup: false
    account: ServiceAccount | None = None


class SimConfig(_Model):
    """Present only on simulated benches: which product flaws and lab faults to switch on."""

    # offtheshelf: dropbear + busybox, not our code; vm: the same in a qemu VM on Debian's kernel
    dut: Literal["certlab", "offtheshelf", "vm"] = "certlab"
    kernel: str | None = None  # vm only: a vmlinuz-<release> file to boot instead of Debian's current one
    accel: Literal["auto", "kvm", "tcg"] = "auto"  # vm only: auto = KVM when it works, else emulation
    flaws: list[str] = []
    lab_faults: list[str] = []
    boot_seconds: float = Field(default=1.5, ge=0, le=60)
    telemetry_interval: float = Field(default=5.0, gt=0, le=3600)
    lockout_attempts: int = Field(default=5, ge=1, le=100)
    lockout_seconds: float = Field(default=10.0, ge=0, le=3600)
    cloud_port: int = Field(default=8883, ge=1, le=65535)
    web_port: int = Field(default=8443, ge=1, le=65535)  # the simulated manufacturer site and app API (HTTPS)
    dirty_expire_seconds: float = Field(default=5.0, gt=0, le=120)
    update_write_seconds: float = Field(default=1.0, ge=0, le=60)
    ssh_delay_seconds: float = Field(default=0.0, ge=0, le=600)  # SSH listens this long after the console prompt

    @field_validator("flaws")
    @classmethod
    def _flaws(cls, value: list[str]) -> list[str]:
        for flaw in value:
            if flaw not in FLAWS:
                raise ValueError(f"unknown flaw id {flaw!r}; use one of: {', '.join(FLAWS)}")
        return value

    @field_validator("lab_faults")
    @classmethod
    def _faults(cls, value: list[str]) -> list[str]:
        for fault in value:
            if fault not in LAB_FAULTS:
                raise ValueError(f"unknown lab fault id {fault!r}; use one of: {', '.join(LAB_FAULTS)}")
        return value


class BenchConfig(_Model):
    name: str
    power: PowerConfig
    console: ConsoleConfig
    network: NetworkConfig
    ssh: SSHConfig = SSHConfig()
    dut: DutConfig
    web: WebResource | None = None
    service: ServiceResource | None = None
    sim: SimConfig | None = None
    playbook: str | None = None
    ansible_vars: dict[str, Any] = {}
    # what the bench can do beyond power, console and SSH (e.g. "wifi", "ble", "capture"); a
    # queued run names the capabilities it needs and only a bench with all of them takes it
    capabilities: list[str] = []
    # the lab host (docs/lab-hosts.md) whose relays, consoles and network reach this bench; needed
    # once a broker is configured, because work for the bench goes to that host's queue
    labhost: str | None = None

    @field_validator("power", mode="before")
    @classmethod
    def _power_backend(cls, value: Any) -> Any:
        """A mapping becomes its backend's model (load_inventory does this first, for its error line)."""
        if isinstance(value, PowerConfigBase):
            return value
        try:
            return PowerRegistry.installed().validate(value)
        except PowerConfigError as exc:
            if exc.validation is not None:
                raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.validation.errors())) from None
            raise ValueError(f"power.{exc.field}: {exc}" if exc.field else str(exc)) from None

    @field_validator("labhost")
    @classmethod
    def _labhost_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", value):
            raise ValueError(f"labhost {value!r}: use a short lower-case host name such as rack1 or lab-pc-2")
        return value

    @field_validator("capabilities")
    @classmethod
    def _capability_names(cls, value: list[str]) -> list[str]:
        for cap in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", cap):
                raise ValueError(f"capability {cap!r}: use lower-case words such as wifi, ble, capture")
        return sorted(set(value))

    @model_validator(mode="after")
    def _offtheshelf_flaws(self) -> "BenchConfig":
        if self.sim and self.sim.dut in ("offtheshelf", "vm"):
            supported = OFF_THE_SHELF_FLAWS  # the VM DUT runs the same busybox and dropbear
            unsupported = sorted(set(self.sim.flaws) - supported)
            if unsupported:
                raise ValueError(
                    f"sim.flaws {unsupported} cannot be switched on an off-the-shelf DUT; "
                    f"it supports only {sorted(supported)}"
                )
        if self.sim and self.sim.dut == "vm" and not (self.network.netns and self.network.gateway):
            raise ValueError("a `sim: {dut: vm}` bench needs network.netns, interface and gateway: the VM's "
                             "network is a tap bridged inside the bench's namespace")
        if self.sim and self.sim.dut != "vm" and (self.sim.kernel or self.sim.accel != "auto"):
            raise ValueError("sim.kernel and sim.accel belong to a `sim: {dut: vm}` bench; remove them")
        return self

    @property
    def simulated(self) -> bool:
        return self.sim is not None


class Inventory(_Model):
    path: Path
    lab: str
    operator: str | None = None
    firmware_dir: str | None = None  # where the lab keeps the release files delivered with samples
    lab_profile: str | None = None  # the lab's details for test reports (name, address, signatories)
    benches: dict[str, BenchConfig]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def bench(self, name: str) -> BenchConfig:
        try:
            return self.benches[name]
        except KeyError:
            raise InventoryError(
                f"{self.path}: no bench named {name!r}; benches are: {', '.join(self.benches)}"
            ) from None

    def resolve_secret(self, ref: SecretRef, *, field: str = "secret") -> str:
        return ref.resolve(self.base_dir, field=f"{self.path}: {field}")

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


# --- loading -------------------------------------------------------------------------------

_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
    "union_tag_invalid": "use one of: scpi, relay_board",
    "union_tag_not_found": "add 'driver: scpi' or 'driver: relay_board'",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "float_parsing": "write a number",
    "float_type": "write a number",
    "string_type": "write a text value (quote it)",
    "model_type": "write a mapping (key: value lines)",
    "dict_type": "write a mapping (key: value lines)",
    "list_type": "write a list",
    "literal_error": "use one of the allowed values",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
}


def _hosts(data: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Walk the Ansible group tree and return (group vars of 'all', {host: merged vars})."""
    root = data.get("all", data)
    if not isinstance(root, dict):
        raise InventoryError(f"{path}: field 'all' must be a mapping of groups; see inventory/sim.yaml")
    hosts: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}

    def walk(group: dict[str, Any], name: str, inherited: dict[str, Any]) -> None:
        if not isinstance(group, dict):
            raise InventoryError(f"{path}: group {name!r} must be a mapping; fix its indentation")
        group_vars = {**inherited, **(group.get("vars") or {})}
        for host, host_vars in (group.get("hosts") or {}).items():
            host_vars = host_vars or {}
            if not isinstance(host_vars, dict):
                raise InventoryError(f"{path}: bench {host!r}: host variables must be a mapping")
            if "certlab" in host_vars and host in hosts and "certlab" in hosts[host]:
                raise InventoryError(
                    f"{path}: bench {host!r} is defined twice (groups {origin[host]!r} and {name!r}); "
                    "give each bench one definition"
                )
            hosts[host] = {**group_vars, **hosts.get(host, {}), **host_vars}
            origin[host] = name
        for child_name, child in (group.get("children") or {}).items():
            walk(child or {}, child_name, group_vars)

    walk(root, "all", {})
    return (root.get("vars") or {}), hosts


def _loc(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    return re.sub(r"\.(scpi|relay_board)(?=\.|$)", "", loc)


def _error_line(path: Path, bench: str | None, exc: ValidationError, prefix: str = "") -> str:
    head = tuple(prefix.split(".")) if prefix else ()
    errors = [{**e, "loc": (*head, *e["loc"])} for e in exc.errors()]
    # A misspelt key shows up as "unknown" plus "missing": name the misspelling, suggest the fix.
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = _loc(err)
    msg = err["msg"].removeprefix("Value error, ")
    fix = _FIXES.get(err["type"], "")
    if err["type"] == "extra_forbidden":
        parent = loc.rpartition(".")[0]
        missing = [_loc(e).rpartition(".")[2] for e in errors if e["type"] == "missing" and _loc(e).rpartition(".")[0] == parent]
        close = difflib.get_close_matches(loc.rpartition(".")[2], missing, n=1)
        msg = "unknown field"
        fix = f"did you mean {close[0]!r}?" if close else fix
    where = f"bench {bench!r}, " if bench else ""
    field = f"certlab.{loc}" if bench and loc else loc or "certlab"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}: {where}field {field!r}: {msg}{'; ' + fix if fix and fix not in msg else ''}{more}"


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory; raise InventoryError with one clear line on any problem."""
    path = Path(path)
    data = read_yaml(path, InventoryError, "inventory")
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: an inventory is a mapping with an 'all' group; see inventory/sim.yaml")
    all_vars, hosts = _hosts(data, path)
    lab_vars = all_vars.get("certlab") or {}
    if not isinstance(lab_vars, dict):
        raise InventoryError(f"{path}: field 'all.vars.certlab' must be a mapping with at least 'lab: NAME'")
    lab_name = str(lab_vars.get("lab") or path.stem)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", lab_name):
        raise InventoryError(f"{path}: field 'all.vars.certlab.lab': {lab_name!r} is not a simple name; use letters, digits, - or _")

    benches: dict[str, BenchConfig] = {}
    power_drivers = PowerRegistry.installed()
    for host, host_vars in hosts.items():
        cfg = host_vars.get("certlab")
        if cfg is None or cfg is lab_vars:
            continue  # an Ansible host that is not a bench (e.g. a lab server)
        if not isinstance(cfg, dict):
            raise InventoryError(f"{path}: bench {host!r}, field 'certlab': must be a mapping; see inventory/sim.yaml")
        extra_vars = {k: v for k, v in host_vars.items() if k.startswith("ansible_")}
        if "power" in cfg:
            cfg = {**cfg, "power": _power(path, host, cfg["power"], power_drivers)}
        try:
            bench = BenchConfig(name=host, ansible_vars=extra_vars, **cfg)
        except ValidationError as exc:
            raise InventoryError(_error_line(path, host, exc)) from None
        except TypeError as exc:
            raise InventoryError(f"{path}: bench {host!r}: {exc}; check the field names") from None
        ansible_host = host_vars.get("ansible_host")
        if ansible_host is not None and str(ansible_host) != bench.network.address:
            raise InventoryError(
                f"{path}: bench {host!r}, field 'ansible_host': {ansible_host} differs from "
                f"certlab.network.address {bench.network.address}; make them equal"
            )
        benches[host] = bench
    if not benches:
        raise InventoryError(f"{path}: no bench found; add hosts with a 'certlab:' variable (see inventory/sim.yaml)")
    _check_shared_resources(path, benches)
    return Inventory(path=path.resolve(), lab=lab_name, operator=lab_vars.get("operator"),
                     firmware_dir=lab_vars.get("firmware_dir"), lab_profile=lab_vars.get("lab_profile"),
                     benches=benches)


def _power(path: Path, bench: str, data: Any, registry: PowerRegistry) -> PowerConfigBase:
    """A bench's power block, validated by its backend's own model; one line naming the field."""
    try:
        return registry.validate(data)
    except PowerConfigError as exc:
        if exc.validation is not None:
            raise InventoryError(_error_line(path, bench, exc.validation, prefix="power")) from None
        field = f"certlab.power.{exc.field}" if exc.field else "certlab.power"
        raise InventoryError(f"{path}: bench {bench!r}, field {field!r}: {exc}") from None


def _check_shared_resources(path: Path, benches: dict[str, BenchConfig]) -> None:
    """Two benches on one relay channel or one console would switch or read each other's DUT."""
    seen: dict[tuple[str, ...], str] = {}
    for bench in benches.values():
        power = bench.power
        where = power.endpoint
        keys = {
            ("power", where, str(power.channel)): f"power channel {power.channel} of {where}",
            ("console", bench.console.url): f"console {bench.console.url}",
            ("address", bench.network.address, str(bench.ssh.port)): f"address {bench.network.address}:{bench.ssh.port}",
        }
        for key, label in keys.items():
            if key in seen:
                raise InventoryError(
                    f"{path}: bench {bench.name!r} uses the same {label} as bench {seen[key]!r}; "
                    "give each bench its own"
                )
            seen[key] = bench.name
