"""A bench: the drivers of one test station, built from its inventory entry.

This is the only place that maps inventory fields onto driver arguments (the factory). Drivers
are created on first use and closed together, so a test that only needs SSH never opens the
console or the relay.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import paramiko

from lab import resources
from lab.drivers.console import ConsoleDriver
from lab.drivers.net import NetDriver
from lab.drivers.power import PowerDriver
from lab.drivers.provision import ProvisionDriver
from lab.drivers.registry import PowerContext, PowerRegistry
from lab.drivers.ssh import SSHDriver
from lab.errors import LabFault
from lab.inventory import BenchConfig, Inventory
from lab.steps import NullSteps, StepRecorder
from lab.strategy import BenchStrategy, ConsolePrompts
from lab.transcript import Transcript


class Bench:
    def __init__(
        self,
        inventory: Inventory,
        name: str,
        *,
        evidence_dir: Path,
        steps: StepRecorder | None = None,
    ) -> None:
        self.inventory = inventory
        self.config: BenchConfig = inventory.bench(name)
        self.name = name
        self.evidence_dir = Path(evidence_dir)
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        self.steps = steps or NullSteps()
        self._opened: list[object] = []

    # --- secrets --------------------------------------------------------------------------
    def ssh_password(self) -> str | None:
        """The lab's login password for this DUT (the label password when none is set apart)."""
        ref = self.config.ssh.password or self.config.dut.label_password
        return None if ref is None else self.inventory.resolve_secret(ref, field=f"bench {self.name!r} ssh.password")

    def label_password(self) -> str | None:
        ref = self.config.dut.label_password
        return None if ref is None else self.inventory.resolve_secret(ref, field=f"bench {self.name!r} dut.label_password")

    def credentials(self) -> tuple[str, str]:
        return self.config.ssh.user, self.ssh_password() or ""

    def transcript(self, kind: str) -> Transcript:
        """An evidence file named after the bench, so parallel benches never mix their logs."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)
        return Transcript(self.evidence_dir / f"{kind}-{safe}.log")

    def _track(self, driver):
        self._opened.append(driver)
        return driver

    # --- drivers --------------------------------------------------------------------------
    @functools.cached_property
    def power(self) -> PowerDriver:
        """The bench's switch, opened by the backend its `power.driver` names (a `certlab.power` entry point)."""
        context = PowerContext(bench=self.name, steps=self.steps, base_dir=self.inventory.base_dir,
                               source=str(self.inventory.path))
        return self._track(PowerRegistry.installed().open(self.config.power, context))

    @functools.cached_property
    def console(self) -> ConsoleDriver:
        cfg = self.config.console
        return self._track(
            ConsoleDriver(cfg.url, cfg.baud, transcript=self.transcript("console"), timeout=cfg.timeout,
                          bench=self.name, steps=self.steps,
                          timeout_source=f"console.timeout of bench {self.name} in the inventory")
        )

    @functools.cached_property
    def ssh(self) -> SSHDriver:
        cfg = self.config.ssh
        return self._track(
            SSHDriver(
                self.config.network.address,
                cfg.port,
                cfg.user,
                self.ssh_password,
                transcript=self.transcript("ssh"),
                timeout=cfg.timeout,
                bench=self.name,
                steps=self.steps,
                timeout_source=f"ssh.timeout of bench {self.name} in the inventory",
                password_source=self.password_source,
            )
        )

    @property
    def password_source(self) -> str:
        """Where the lab's login password comes from, for reasons that name the field to fix."""
        if self.config.ssh.password is not None:
            return f"ssh.password of bench {self.name}"
        return f"dut.label_password of bench {self.name} (no ssh.password set)"

    @functools.cached_property
    def net(self) -> NetDriver:
        cfg = self.config.network
        return NetDriver(cfg.address, interface=cfg.interface, bench=self.name, steps=self.steps)

    @functools.cached_property
    def provision(self) -> ProvisionDriver:
        cfg = self.config.ssh
        return ProvisionDriver(
            self.inventory.path, self.name, password=self.ssh_password, user=cfg.user, port=cfg.port,
            bench=self.name, steps=self.steps,
        )

    @functools.cached_property
    def prompts(self) -> ConsolePrompts:
        cfg = self.config.console
        return ConsolePrompts(
            boot_banner=cfg.boot_banner,
            login_prompt=cfg.login_prompt,
            password_prompt=cfg.password_prompt,
            shell_prompt=cfg.shell_prompt,
            login_incorrect=cfg.login_incorrect,
        )

    @functools.cached_property
    def strategy(self) -> BenchStrategy:
        playbook = self.inventory.resolve_path(self.config.playbook) if self.config.playbook else resources.default_playbook()
        return BenchStrategy(
            power=self.power,
            console=self.console,
            ssh=self.ssh,
            provision=self.provision,
            prompts=self.prompts,
            credentials=self.credentials,
            credentials_source=f"ssh.user and {self.password_source}",
            boot_timeout=self.config.console.boot_timeout,
            playbook=playbook,
            bench=self.name,
            steps=self.steps,
        )

    def equipment(self, *, identify: bool = False) -> dict[str, Any]:
        """What a test report lists for this bench (ISO/IEC 17025 7.8.2.1: equipment used).

        Identification comes from what the drivers already learnt; `identify` asks the relay
        when nothing has yet. No secret and no DUT fact beyond what the inventory says.
        """
        cfg = self.config
        power: dict[str, Any] = {"driver": cfg.power.driver, "channel": cfg.power.channel, "resource": cfg.power.endpoint}
        driver = self.__dict__.get("power")  # only a driver the run built: never open a relay to describe it
        if identify and driver is not None and getattr(driver, "identity", None) is None:
            try:
                driver.identify()
            except LabFault:
                pass
        power["identification"] = getattr(driver, "identity", None)  # a plugin's driver may not keep one
        ssh = self.__dict__.get("ssh")
        return {
            "bench": self.name,
            "capabilities": list(cfg.capabilities),
            "power": power,
            "console": {"url": cfg.console.url, "baud": cfg.console.baud},
            "network": {"address": cfg.network.address, "interface": cfg.network.interface},
            "ssh": {"client": f"paramiko {paramiko.__version__}",
                    "server": ssh.server_version if ssh is not None else None,
                    "host_key": ssh.host_key if ssh is not None else None},
        }

    def close(self) -> None:
        for driver in reversed(self._opened):
            try:
                driver.close()
            except Exception:  # noqa: BLE001 - closing must never hide the test's own outcome
                pass
        self._opened.clear()
