"""The EN 303 645 suites find real flaws in software certlab did not write (docs/offtheshelf-dut.md).

Runs 5.1-1-2 (universal default password), 5.6-1-2 (undocumented interfaces) and 5.5-1-2
(best-practice cryptography) on the off-the-shelf samples of `inventory/sim-offtheshelf.yaml`:
dropbear and busybox, not our simulator. `ots1` conforms and must PASS all three; `ots2` ships
root/admin and a telnet root shell on tcp/2323 and must FAIL the first two, for those reasons;
`ots3` (OTS-1T) documents a busybox telnetd + login on tcp/23 and must FAIL 5.5-1-2 because the
lab's root login there crossed the network in clear (5.6-1-2 PASSes: the port is documented). Also
5.1-3-2, 5.5-2-2 and 5.3-16-2: `ots1` shows its documented dropbear 2022.83 and model, and 5.1-3-2
finds a real weakness of stock dropbear there: it negotiates diffie-hellman-group14-sha1 and offers
ssh-rsa (SHA-1), which its IXIT documents honestly. 5.5-4-2 finds ots2's
telnet shell running the version command with no login; ots1 and ots3 PASS it and 5.6-2-2 (ots3's
busybox login prompt shows the host name, the serial number, as OTS-1T's IXIT allows). The lab is a copy of the shipped inventory
with its own lab name, relay port and addresses, so it never collides with a running `ots` lab;
it is always brought down, also when the run fails. Needs root, network namespaces,
dropbear-bin, busybox-static (telnetd) and util-linux `unshare`; skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab.inventory import load_inventory
from lab.sim.lab import SimLab
from lab.sim.netns import unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "inventory" / "sim-offtheshelf.yaml"
LAB, SCPI_PORT, SUBNET = "otsproof", 17020, 171  # this test's own lab: never the shipped `ots`
CASES = [
    "testsuites/en303645/test_5_1_passwords.py::test_5_1_1_2_no_universal_default_password",
    "testsuites/en303645/test_5_6_attack_surface.py::test_5_6_1_2_only_documented_interfaces_open",
    "testsuites/en303645/test_5_5_communication.py::test_5_5_1_2_best_practice_crypto",
    "testsuites/en303645/test_5_1_passwords.py::test_5_1_3_2_authentication_crypto_as_documented",
    "testsuites/en303645/test_5_5_implementations.py::test_5_5_2_2_security_implementations_as_documented",
    "testsuites/en303645/test_5_3_identity.py::test_5_3_16_2_model_designation_as_documented",
    "testsuites/en303645/test_5_5_network_auth.py::test_5_5_4_2_network_functions_need_authentication",
    "testsuites/en303645/test_5_6_attack_surface.py::test_5_6_2_2_no_unauthenticated_disclosure_beyond_ixit",
]
RUN_SECONDS = 120.0  # every bench, in parallel; a run still going then is killed (its verdicts are missing)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the off-the-shelf DUT needs root (chroot, mount and PID namespaces)"
    reason = unavailable_reason()
    if reason:
        return f"needs network namespaces: {reason}"
    for tool in ("dropbear", "dropbearkey", "busybox", "unshare"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (apt-get install dropbear-bin busybox-static util-linux)"
    applets = subprocess.run(["busybox", "--list"], capture_output=True, text=True, timeout=10).stdout.split()
    if "telnetd" not in applets:
        return "this busybox has no telnetd applet (ots2's debug shell): install busybox-static"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def _private_copy(folder: Path) -> Path:
    """The shipped off-the-shelf inventory under this test's lab name, relay port and subnet."""
    doc = yaml.safe_load(SHIPPED.read_text())  # resolves the shared console prompts (<<: *prompts)
    doc["all"]["vars"]["certlab"]["lab"] = LAB
    doc["all"]["vars"].pop("certlab_console_prompts", None)
    hosts = doc["all"]["children"]["benches"]["hosts"]
    for i, (name, host) in enumerate(hosts.items(), start=1):
        c = host["certlab"]
        address = f"10.203.{SUBNET}.{4 * i + 2}"
        host["ansible_host"] = address
        c["power"]["resource"] = f"TCPIP::127.0.0.1::{SCPI_PORT}::SOCKET"
        c["console"]["url"] = f"/tmp/certlab-sim/{LAB}/{name}/console"
        c["network"] = {"address": address, "netns": f"cl-{LAB}-{i}", "interface": f"clh{SUBNET}o{i}",
                        "gateway": f"10.203.{SUBNET}.{4 * i + 1}", "prefix": 30}
        for ref in (c["ssh"]["password"], c["dut"]["label_password"]):
            ref["file"] = str((SHIPPED.parent / ref["file"]).resolve())
    (folder / "products").symlink_to(ROOT / "inventory" / "products", target_is_directory=True)
    path = folder / f"{LAB}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict]]:
    """bench -> test case -> result, from one run of both test cases on both samples."""
    folder = tmp_path_factory.mktemp("ots-proof")
    inventory = _private_copy(folder)
    lab = SimLab(load_inventory(inventory))
    results: dict[str, dict[str, dict]] = {}
    logs: dict[str, str] = {}
    start = time.monotonic()
    try:
        lab.up()
        procs = {}
        for bench in ("ots1", "ots2", "ots3"):  # one pytest per bench, in parallel, as `certlab run` does
            out = folder / f"run-{bench}"
            procs[bench] = (out, subprocess.Popen(
                [sys.executable, "-m", "pytest", *CASES, "--inventory", str(inventory), "--bench", bench,
                 "--certlab-out", str(out), "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, "COLUMNS": "200"}))
        for bench, (out, proc) in procs.items():
            try:
                logs[bench] = proc.communicate(timeout=max(5.0, RUN_SECONDS - (time.monotonic() - start)))[0]
            except subprocess.TimeoutExpired:  # interrupt: pytest still writes the verdicts it has
                proc.send_signal(signal.SIGINT)
                try:
                    logs[bench] = proc.communicate(timeout=5)[0]
                except subprocess.TimeoutExpired:
                    proc.kill()
                    logs[bench] = proc.communicate()[0]
                logs[bench] += f"\n(stopped after {RUN_SECONDS:.0f} s: the lab PC may be overloaded)"
            path = out / "verdicts.json"
            doc = json.loads(path.read_text()) if path.exists() else {"results": []}
            results[bench] = {r["test_case"]: r for r in doc["results"]}
    finally:
        lab.down()
    results["_logs"] = logs  # type: ignore[assignment]
    return results


def _result(verdicts: dict, bench: str, case: str) -> dict:
    found = verdicts[bench].get(case)
    assert found, f"no verdict for {case} on {bench}; pytest said:\n{verdicts['_logs'].get(bench, '')[-2000:]}"
    return found


@pytest.mark.timeout(240)
@pytest.mark.parametrize("case", ["5.1-1-2", "5.6-1-2", "5.5-1-2", "5.5-2-2", "5.3-16-2", "5.5-4-2", "5.6-2-2"])
def test_conforming_offtheshelf_sample_passes(verdicts, case):
    r = _result(verdicts, "ots1", case)
    assert r["verdict"] == "PASS", f"ots1 {case}: {r['verdict']}: {r['reason'][:500]}"


@pytest.mark.timeout(240)
def test_universal_password_found_in_dropbear(verdicts):
    r = _result(verdicts, "ots2", "5.1-1-2")
    assert r["verdict"] == "FAIL", f"ots2 5.1-1-2: {r['verdict']}: {r['reason'][:500]}"
    assert "admin" in r["reason"] and "opens the DUT" in r["reason"], r["reason"][:500]


@pytest.mark.timeout(240)
def test_busybox_telnet_shell_found(verdicts):
    r = _result(verdicts, "ots2", "5.6-1-2")
    assert r["verdict"] == "FAIL", f"ots2 5.6-1-2: {r['verdict']}: {r['reason'][:500]}"
    assert "tcp/2323" in r["reason"] and "undocumented" in r["reason"], r["reason"][:500]


@pytest.mark.timeout(240)
def test_busybox_telnet_login_in_clear_text_found(verdicts):
    r = _result(verdicts, "ots3", "5.5-1-2")
    assert r["verdict"] == "FAIL", f"ots3 5.5-1-2: {r['verdict']}: {r['reason'][:500]}"
    assert "telnet on port 23 accepted the login of user root in clear text" in r["reason"], r["reason"][:500]
    documented = _result(verdicts, "ots3", "5.6-1-2")
    assert documented["verdict"] == "PASS", f"ots3 5.6-1-2: {documented['verdict']}: {documented['reason'][:500]}"


@pytest.mark.timeout(240)
def test_dropbear_sha1_key_exchange_found(verdicts):
    """Stock dropbear 2022.83 still negotiates diffie-hellman-group14-sha1 and offers ssh-rsa (SHA-1 signatures):
    documented honestly in OTS-1's IXIT, and found weak by 5.1-3-2 on the sample that conforms otherwise."""
    r = _result(verdicts, "ots1", "5.1-3-2")
    assert r["verdict"] == "FAIL", f"ots1 5.1-3-2: {r['verdict']}: {r['reason'][:500]}"
    assert "agreed on diffie-hellman-group14-sha1" in r["reason"] and "ssh-rsa" in r["reason"], r["reason"][:500]


@pytest.mark.timeout(240)
def test_busybox_telnet_shell_without_login_found(verdicts):
    """busybox telnetd -l /bin/sh (ots2, tcp/2323) runs the product's version command for anyone: 5.5-4-2 FAILs on it;
    ots3's documented busybox login refuses empty and wrong passwords, and its prompt's host name (the serial) is
    the disclosure OTS-1T's IXIT allows (5.6-2-2 PASS)."""
    r = _result(verdicts, "ots2", "5.5-4-2")
    assert r["verdict"] == "FAIL", f"ots2 5.5-4-2: {r['verdict']}: {r['reason'][:500]}"
    assert "tcp/2323" in r["reason"] and "no login at all" in r["reason"], r["reason"][:500]
    for case in ("5.5-4-2", "5.6-2-2"):
        r = _result(verdicts, "ots3", case)
        assert r["verdict"] == "PASS", f"ots3 {case}: {r['verdict']}: {r['reason'][:500]}"
