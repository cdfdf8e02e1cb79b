"""Provisioning driver (ansible-runner): bring a DUT's configuration to the lab's baseline.

The playbook runs against the lab inventory itself (it is an Ansible inventory), limited to the
bench's host. The SSH password must never touch the disk: ansible-runner writes its whole
environment (`artifacts/*/command`) and its env files into the private data dir, so the password
is not passed as an environment variable or extra var. Instead Ansible asks for it
(`--ask-pass`) and ansible-runner answers the prompt from memory through the child's pty.
The private data dir is a temp dir removed afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import ProvisionFault
from lab.steps import NullSteps, StepRecorder
from lab.transcript import REDACTED

Password = str | Callable[[], str | None] | None
# Ansible's --ask-pass prompt ("SSH password:"), answered by ansible-runner from memory.
_SSH_PASSWORD_PROMPT = r"(?i)ssh password:\s*?$"


@dataclass(frozen=True)
class FailedTask:
    task: str
    host: str
    message: str
    unreachable: bool = False


@dataclass(frozen=True)
class ProvisionResult:
    status: str  # ansible-runner: successful, failed, timeout, canceled
    rc: int | None
    stdout: str
    failed_tasks: list[FailedTask] = field(default_factory=list)


class ProvisionDriver:
    def __init__(self, inventory_path: str | Path, host: str, *, password: Password = None,
                 user: str | None = None, port: int | None = None, connection: str | None = None,
                 bench: str | None = None, steps: StepRecorder | None = None) -> None:
        self.inventory_path = Path(inventory_path).resolve()
        self.host = host
        self._password = password
        # Overrides of the inventory's ansible_user / ansible_port / ansible_connection, so that
        # certlab's own ssh settings and Ansible's can never disagree about where the DUT is.
        self.overrides = {k: v for k, v in (("ansible_user", user), ("ansible_port", port),
                                             ("ansible_connection", connection)) if v is not None}
        self.bench = bench
        self._steps = steps or NullSteps()
        self._lock = threading.Lock()  # one playbook at a time per bench

    def run_playbook(self, playbook: str | Path, *, extravars: dict[str, Any] | None = None,
                     timeout: int = 300, check: bool = True) -> ProvisionResult:
        """Run `playbook` on this bench's host; `ProvisionFault` on failure unless `check=False`."""
        import ansible_runner

        playbook = Path(playbook).resolve()
        if not playbook.is_file():
            raise ProvisionFault(f"playbook {playbook} not found", bench=self.bench)
        password = self._password() if callable(self._password) else self._password
        private = Path(tempfile.mkdtemp(prefix="certlab-ansible-"))
        with self._lock, self._steps.step("provision", bench=self.bench, playbook=playbook.name, host=self.host):
            try:
                runner = ansible_runner.run(
                    private_data_dir=str(private),
                    playbook=str(playbook),
                    inventory=str(self.inventory_path),
                    limit=self.host,
                    extravars={**(extravars or {}), **self.overrides},
                    cmdline="--ask-pass" if password else None,
                    passwords={_SSH_PASSWORD_PROMPT: password} if password else {},
                    envvars=self._environment(private),
                    suppress_env_files=True,  # extravars/passwords stay in memory, not in env/
                    quiet=True,
                    timeout=timeout,
                    project_dir=str(playbook.parent),
                )
                stdout = self._redact(runner.stdout.read() if runner.stdout else "", password)
                failed = self._failures(runner, password)
                result = ProvisionResult(runner.status, runner.rc, stdout, failed)
            finally:
                shutil.rmtree(private, ignore_errors=True)
        if check and result.status != "successful":
            raise ProvisionFault(self._describe(playbook, result, timeout), bench=self.bench)
        return result

    # --- internals -------------------------------------------------------------------------
    def _environment(self, private: Path) -> dict[str, str]:
        """Ansible settings for a lab: no host key prompts, nothing written outside the temp dir."""
        bindir = str(Path(sys.executable).parent)  # the venv's ansible-playbook, even if not on PATH
        return {
            "PATH": bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_PARAMIKO_HOST_KEY_AUTO_ADD": "True",
            "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False",
            "ANSIBLE_PARAMIKO_LOOK_FOR_KEYS": "False",
            "ANSIBLE_SSH_ARGS": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no "
                                "-o LogLevel=ERROR -o PreferredAuthentications=password,keyboard-interactive "
                                "-o PubkeyAuthentication=no",
            "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
            "ANSIBLE_HOME": str(private / "ansible-home"),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        }

    @staticmethod
    def _redact(text: str, password: str | None) -> str:
        return text.replace(password, REDACTED) if password and len(password) >= 3 else text

    def _failures(self, runner, password: str | None) -> list[FailedTask]:
        failed: list[FailedTask] = []
        for event in runner.events:
            kind = event.get("event")
            if kind not in ("runner_on_failed", "runner_on_unreachable"):
                continue
            data = event.get("event_data", {})
            if data.get("ignore_errors"):
                continue
            res = data.get("res", {}) or {}
            message = res.get("msg") or ""
            detail = (res.get("stderr") or res.get("stdout") or "").strip()
            if detail and detail not in message:
                message = f"{message}: {detail}" if message else detail
            if "rc" in res and f"rc={res['rc']}" not in message:
                message = f"{message} (rc={res['rc']})"
            failed.append(FailedTask(data.get("task", "?"), data.get("host", self.host),
                                     self._redact(message.strip()[-500:], password),
                                     kind == "runner_on_unreachable"))
        return failed

    def _describe(self, playbook: Path, result: ProvisionResult, timeout: int) -> str:
        if result.status == "timeout":
            return f"playbook {playbook.name} on {self.host} did not finish within {timeout} s"
        if result.failed_tasks:
            task = result.failed_tasks[0]
            how = "host unreachable in" if task.unreachable else "failed at"
            return f"playbook {playbook.name} {how} task {task.task!r} on {task.host}: {task.message}"
        tail = re.sub(r"\s+", " ", result.stdout.strip()[-300:])
        return f"playbook {playbook.name} on {self.host} ended {result.status} (rc={result.rc}): {tail}"
