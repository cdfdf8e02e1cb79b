"""The `command` power backend: the lab's own on/off/status programs, like labgrid's
ExternalPowerDriver or LAVA's power commands.

    power: {driver: command, on: [pdu-ctl, on, "{channel}"], off: [pdu-ctl, off, "{channel}"],
            status: [pdu-ctl, status, "{channel}"], channel: 3, timeout: 10}

A command is an argv list, or a string split like a shell would (shlex) but run without one;
only `shell: true` runs the strings through /bin/sh. `{channel}` in a command becomes
`power.channel`. Status: exit 0 and stdout starting with the word `on` or `off` (any case), or,
with `status_on: REGEX`, exit 0 and on exactly when REGEX matches stdout. Every switch is read
back with the status command; a command that fails, times out or is missing is retried like any
relay, then a PowerFault names the command, its exit status and its stderr.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lab.drivers.power import _RetryingPower, _Transient
from lab.drivers.registry import PowerBackend, PowerConfigBase, PowerContext
from lab.errors import PowerFault
from lab.secrets import SecretRef
from lab.steps import StepRecorder

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OUTPUT_LIMIT = 400  # characters of stdout/stderr quoted in a fault


class CommandPowerConfig(PowerConfigBase):
    """Inventory fields of the `command` backend."""

    driver: Literal["command"]
    on: str | list[str]
    off: str | list[str]
    status: str | list[str]
    status_on: str | None = None  # a regex on the status command's stdout that means "on"
    shell: bool = False  # run the command strings through /bin/sh -c
    env: dict[str, str | SecretRef] = {}  # added to certlab's environment; values may be {env:}/{file:} secrets
    timeout: float = Field(default=10.0, gt=0, le=300)  # per command run

    @model_validator(mode="before")
    @classmethod
    def _yaml_booleans(cls, data: Any) -> Any:
        """YAML 1.1 (PyYAML, Ansible) reads the keys `on:` and `off:` as true and false: take them back."""
        if isinstance(data, dict) and (True in data or False in data):
            names = {True: "on", False: "off"}
            data = {names.get(k, k) if isinstance(k, bool) else k: v for k, v in data.items()}
        return data

    @field_validator("on", "off", "status")
    @classmethod
    def _command(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value or not value[0].strip():
                raise ValueError("an empty command; write a program and its arguments, e.g. [pdu-ctl, on, '{channel}']")
            return value
        if not value.strip():
            raise ValueError("an empty command; write a program and its arguments, e.g. 'pdu-ctl on {channel}'")
        try:
            shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot be split into words ({exc}); fix the quoting or write a list") from None
        return value

    @field_validator("status_on")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from None
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name; use letters, digits and _")
        return value

    @model_validator(mode="after")
    def _shell_strings(self) -> "CommandPowerConfig":
        if self.shell and any(isinstance(c, list) for c in (self.on, self.off, self.status)):
            raise ValueError("with shell: true write each command as one string (the shell splits it)")
        return self

    def argv(self, which: Literal["on", "off", "status"]) -> list[str] | str:
        """The command as run: a list (no shell) or one string for `sh -c`, `{channel}` filled in."""
        command = getattr(self, which)
        channel = str(self.channel)
        if isinstance(command, str):
            return command.replace("{channel}", channel) if self.shell else \
                [w.replace("{channel}", channel) for w in shlex.split(command)]
        return [w.replace("{channel}", channel) for w in command]

    @property
    def endpoint(self) -> str:
        status = self.argv("status")
        return f"command {status if isinstance(status, str) else shlex.join(status)}"


def _shown(command: list[str] | str) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def _tail(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _OUTPUT_LIMIT else "..." + text[-_OUTPUT_LIMIT:]


class CommandPower(_RetryingPower):
    """Switch and read a bench's power by running the inventory's commands."""

    def __init__(self, config: CommandPowerConfig, *, env: dict[str, str] | None = None, bench: str | None = None,
                 steps: StepRecorder | None = None) -> None:
        super().__init__(config.channel, timeout=config.timeout, retries=config.retries, bench=bench, steps=steps)
        self.config = config
        self.where = "external power command"
        self._env = {**os.environ, **(env or {})}
        self._status_on = re.compile(config.status_on) if config.status_on else None

    def close(self) -> None:
        """Nothing stays open between commands."""

    def _drop(self) -> None:
        pass

    def _run(self, which: Literal["on", "off", "status"]) -> str:
        """Run one command; its stdout, or _Transient naming it, its exit status and stderr."""
        command = self.config.argv(which)
        shown = _shown(command)
        try:
            proc = subprocess.Popen(command, shell=self.config.shell, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env,
                                    start_new_session=True, text=True, errors="replace")
        except OSError as exc:
            raise _Transient(f"`{shown}` could not be started ({exc.strerror or exc}); fix: power.{which} "
                             "of the inventory, or install the program") from exc
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the command's whole session: a shell's children too
            except ProcessLookupError:
                pass
            try:
                proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:  # a grandchild left its session and holds the pipes
                pass
            raise _Transient(f"`{shown}` did not finish within {self.timeout} s (power.timeout)") from None
        if proc.returncode != 0:
            raise _Transient(f"`{shown}` exited with status {proc.returncode}"
                             f"{': ' + _tail(err) if err.strip() else ' and printed nothing on stderr'}")
        return out

    def _set(self, on: bool) -> None:
        self._run("on" if on else "off")

    def _get(self) -> bool:
        out = self._run("status")
        if self._status_on is not None:
            return self._status_on.search(out) is not None
        words = out.split()
        word = words[0].lower() if words else ""
        if word in ("on", "off"):
            return word == "on"
        raise PowerFault(f"{self.where} `{_shown(self.config.argv('status'))}` printed {_tail(out)!r}, not on or off; "
                         "fix: make it print on/off, or set power.status_on to a regex that matches when on",
                         bench=self.bench)

    def _identify(self) -> str:
        state = "on" if self._get() else "off"
        return f"external power commands (status `{_shown(self.config.argv('status'))}`: {state})"


def _open(config: CommandPowerConfig, ctx: PowerContext) -> CommandPower:
    env = {name: value if isinstance(value, str) else ctx.secret(value, f"power.env.{name}")
           for name, value in config.env.items()}
    return CommandPower(config, env=env, bench=ctx.bench, steps=ctx.steps)


COMMAND = PowerBackend(CommandPowerConfig, _open, "the lab's own on/off/status commands")
