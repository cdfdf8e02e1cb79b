"""Power backends found through the `certlab.power` entry-point group.

A power backend is one object: the pydantic model of its inventory fields and a factory that
opens a driver from a validated config. certlab's own backends (scpi, relay_board, command,
http-pdu) register in certlab's `pyproject.toml` exactly as a lab's plugin package would, so a
lab adds a relay backend by installing a package, never by editing certlab:

    [project.entry-points."certlab.power"]
    my-relay = "my_relay.certlab:BACKEND"   # BACKEND = PowerBackend(MyRelayConfig, open_my_relay)

The registry is an object made from the installed distributions' metadata (no module state);
entry points are loaded only when their driver is named, so a broken plugin breaks only the
benches that use it, with a line naming the plugin.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lab.errors import CertlabError
from lab.secrets import SecretRef
from lab.steps import StepRecorder

if TYPE_CHECKING:  # the drivers import this module's types; only the type checker goes back
    from lab.drivers.power import PowerDriver

ENTRY_POINT_GROUP = "certlab.power"


class PowerConfigBase(BaseModel):
    """The fields every power backend has; a backend's config model subclasses this.

    `channel` is the relay channel or outlet of the bench (the report's equipment list and the
    inventory's shared-channel check use it); `timeout` bounds one exchange with the switch and
    `retries` the further attempts after a transient failure.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    driver: str
    channel: int = Field(default=1, ge=1, le=9999)
    timeout: float = Field(default=2.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=10)

    @property
    def endpoint(self) -> str:
        """Where the switch is reached (no secret): the equipment list and the shared-channel check."""
        return str(getattr(self, "resource", None) or getattr(self, "url", None) or self.driver)


@dataclass(frozen=True)
class PowerContext:
    """What a factory may need from the lab besides the config: the bench, its step recorder,
    and the inventory's secret and path resolution (relative to the inventory's folder)."""

    bench: str | None = None
    steps: StepRecorder | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    source: str = "inventory"  # names the file in errors about secrets

    def secret(self, ref: SecretRef, field_name: str) -> str:
        where = f"bench {self.bench!r} " if self.bench else ""
        return ref.resolve(self.base_dir, field=f"{self.source}: {where}{field_name}")

    def path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


@dataclass(frozen=True)
class PowerBackend:
    """A power backend: its inventory model and the factory that opens its driver."""

    config: type[PowerConfigBase]
    open: Callable[[Any, PowerContext], "PowerDriver"]
    summary: str = ""


class PowerConfigError(CertlabError):
    """A bench's `power:` block does not validate; `field` is the dotted path under power."""

    def __init__(self, message: str, *, field: str = "driver", validation: ValidationError | None = None):
        super().__init__(message)
        self.field = field
        self.validation = validation


class PowerRegistry:
    """The installed power backends, by driver name."""

    def __init__(self, entry_points: Iterable[metadata.EntryPoint] | Mapping[str, PowerBackend]) -> None:
        self._entry_points: dict[str, metadata.EntryPoint] = {}
        self._loaded: dict[str, PowerBackend] = {}
        if isinstance(entry_points, Mapping):
            self._loaded = dict(entry_points)
        else:
            for ep in entry_points:
                self._entry_points.setdefault(ep.name, ep)  # the first distribution on sys.path wins, as imports do

    @classmethod
    def installed(cls) -> "PowerRegistry":
        """The backends of every installed distribution (`importlib.metadata`, read now).

        Every copy of a distribution's metadata counts, not only the first: a stale
        `certlab.egg-info` in the working directory must not hide the installed entry points.
        """
        return cls(ep for dist in metadata.distributions() for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP)

    def names(self) -> list[str]:
        return sorted({*self._entry_points, *self._loaded})

    def backend(self, name: str) -> PowerBackend:
        """The backend registered as `name`; CertlabError (one line) if none, or if it fails to load."""
        if name in self._loaded:
            return self._loaded[name]
        ep = self._entry_points.get(name)
        if ep is None:
            raise PowerConfigError(self.unknown(name))
        dist = getattr(ep.dist, "name", None) or "its package"
        try:
            backend = ep.load()
        except Exception as exc:  # noqa: BLE001 - a plugin may fail in any way; say which one
            raise PowerConfigError(f"power driver {name!r} ({ep.value}, from {dist}) failed to load "
                                   f"({type(exc).__name__}: {exc}); fix: reinstall {dist} or uninstall it") from None
        if not (isinstance(backend, PowerBackend) and issubclass(backend.config, PowerConfigBase)):
            raise PowerConfigError(f"power driver {name!r} ({ep.value}, from {dist}) is not a "
                                   "lab.drivers.registry.PowerBackend; fix: ask its author to register a PowerBackend")
        self._loaded[name] = backend
        return backend

    def unknown(self, name: str) -> str:
        installed = self.names()
        if not installed:
            return (f"{name!r}: no power driver is installed, not even certlab's own (entry-point group "
                    f"{ENTRY_POINT_GROUP}); fix: install certlab with pip (pip install -e . in a checkout)")
        close = difflib.get_close_matches(name, installed, n=1)
        hint = f"did you mean {close[0]!r}, or " if close else ""
        return (f"{name!r} is no installed power driver; installed: {', '.join(installed) or 'none'}; "
                f"fix: {hint}install the package that provides it (entry-point group {ENTRY_POINT_GROUP})")

    def validate(self, data: Any) -> PowerConfigBase:
        """A bench's `power:` mapping as its backend's model; PowerConfigError naming the field."""
        if isinstance(data, PowerConfigBase):
            return data
        if not isinstance(data, Mapping):
            raise PowerConfigError("write a mapping (key: value lines) with at least 'driver'", field="")
        name = data.get("driver")
        if name is None:
            raise PowerConfigError(f"missing; add 'driver: NAME' with one of: {', '.join(self.names())}")
        if not isinstance(name, str):
            raise PowerConfigError(f"{name!r} is not a driver name; use one of: {', '.join(self.names())}")
        backend = self.backend(name)
        try:
            return backend.config.model_validate(dict(data))
        except ValidationError as exc:
            raise PowerConfigError(str(exc), field="", validation=exc) from None

    def open(self, config: PowerConfigBase, context: PowerContext) -> "PowerDriver":
        """Open the driver of a validated config through its backend's factory."""
        return self.backend(config.driver).open(config, context)
