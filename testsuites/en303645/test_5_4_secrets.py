"""5.4-1-2 and 5.4-3-2: secret parameters at rest, and no critical parameter shared across samples (TS 103 701 V1.1.1).

5.4-1-2: EN 303 645 5.4-1 wants sensitive security parameters in persistent storage stored
securely. The lab knows some secrets: its own login password (inventory), and every IXIT
10-SecParam entry with a `config_key`, which it sets to a fresh random value through the
documented configuration command (test_facts.config_set_command). It then reads the documented
persistent storage (test_facts.persistent_storage) over SFTP, bounded, and looks for each
secret in clear or trivially encoded; the files the IXIT names for a parameter (`stored_in`)
must exist and allow no more than its `file_mode`.

5.4-3-2: EN 303 645 5.4-3 forbids hard-coded critical security parameters in device software.
The lab fetches the DUT's SSH host keys (one key exchange per algorithm, no login), records
them in the run's evidence, and compares them with what the other samples of the model
recorded in the same run (it reads their records rather than connecting to them: a peer may
be in the middle of a timing or power-cut test of its own). It scans the release images
delivered with the sample (test_facts.update_images, in the inventory's firmware_dir) for
private keys: PEM / OpenSSH blocks, and the raw private half of the DUT's own Ed25519 host keys.

Side effects: 5.4-1-2 leaves the lab's random value set as each `config_key` secret (e.g. the
Wi-Fi key); nothing is rebooted. 5.4-3-2 only opens SSH connections that never log in.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
from pathlib import Path

import allure
import paramiko
import pytest

import support
from lab.csp import keys, storage
from lab.errors import CertlabError, DutError

MAX_IMAGE_BYTES = 1024 * 1024 * 1024


def _known_secrets(bench, ixit, test_facts) -> list[storage.Secret]:
    """The secrets the lab knows: its login password(s), and a fresh value for each settable 10-SecParam."""
    known = []
    for name, value in (("the lab's login password (inventory ssh.password)", bench.ssh_password()),
                        ("the label password (inventory dut.label_password)", bench.label_password())):
        if value and all(s.value != value for s in known):
            known.append(storage.Secret(name, value))
    settable = [p for p in ixit.sec_param if p.config_key]
    if settable:
        template = test_facts.need("config_set_command")
        for param in settable:
            value = "certlab" + secrets.token_hex(12)
            with allure.step(f"set 10-SecParam {param.id} (setting {param.config_key}) to a fresh random value"):
                support.ssh_output(bench, template.format(key=shlex.quote(param.config_key), value=shlex.quote(value)))
            known.append(storage.Secret(f"10-SecParam {param.id} (set by the lab as setting {param.config_key})", value))
    return known


def _sftp(bench) -> paramiko.SFTPClient:
    try:
        return bench.ssh.connect().open_sftp()
    except (paramiko.SSHException, EOFError) as exc:
        raise CertlabError(f"the lab reads the DUT's persistent storage over SFTP, and {bench.ssh.where} offers none "
                           f"({exc}); search it by hand") from None


@pytest.mark.etsi("5.4-1-2")
def test_5_4_1_2_secrets_not_in_clear_at_rest(dut, bench, ixit, test_facts, evidence):
    """Secrets the lab set or knows are not in clear in persistent storage; their files have the documented modes."""
    roots = test_facts.need("persistent_storage")
    known = _known_secrets(bench, ixit, test_facts)
    search, notes = storage.searchable(known)
    if not search:
        raise CertlabError("the lab knows no secret of this DUT long enough to search for (" + "; ".join(notes) + ")")
    documented = [(p, path) for p in ixit.sec_param for path in p.stored_in]
    with allure.step(f"read the persistent storage {', '.join(roots)} over SFTP"):
        sftp = _sftp(bench)
        with sftp:
            listing = storage.walk(sftp, roots)
            stats: dict[str, int | None] = {}
            for _, path in documented:
                try:
                    stats[path] = sftp.stat(path).st_mode
                except OSError:
                    stats[path] = None
    findings = storage.find_secrets(listing.files, search)
    problems = [f"{f.secret} is stored {f.form} in {f.path} (mode {storage.describe_mode(f.mode)})" for f in findings]
    for param, path in documented:
        mode = stats[path]
        if mode is None:
            problems.append(f"{path}, where 10-SecParam {param.id} is documented to be stored, does not exist")
        elif param.file_mode and storage.excess_bits(mode, storage.parse_mode(param.file_mode)):
            problems.append(f"{path} (10-SecParam {param.id}) has mode {storage.describe_mode(mode & 0o7777)}, "
                            f"more than the documented {param.file_mode}")
    evidence.json("storage", {
        "roots": list(roots), "secrets_searched": [s.name for s in search], "not_searched": notes,
        "forms": sorted(storage.forms("x")), "files": listing.summary(), "not_followed": listing.skipped,
        "incomplete": listing.incomplete,
        "documented_files": {path: None if stats[path] is None else f"{stats[path] & 0o7777:04o}" for _, path in documented},
        "findings": [{"path": f.path, "secret": f.secret, "form": f.form, "offset": f.offset} for f in findings],
    })
    if problems:
        raise DutError("secret parameters not protected at rest as documented: " + "; ".join(problems))
    if listing.incomplete:
        raise CertlabError("the search of the persistent storage is incomplete: " + "; ".join(listing.incomplete[:5]))
    with allure.step(f"none of {len(search)} secrets found in {len(listing.files)} files; documented modes hold"):
        pass


def _record(evidence, record: dict) -> Path:
    """This sample's host keys where its peers look for them, written whole (rename) before any peer is read."""
    path = evidence.path("host-keys.json")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    allure.attach.file(str(path), name=path.name, attachment_type=allure.attachment_type.JSON)
    return path


def _peer_keys(peer_samples, root, name: str) -> tuple[dict[str, list[keys.HostKey]], list[str]]:
    """The host keys the other samples recorded in this run; the peers with no record yet."""
    found: dict[str, list[keys.HostKey]] = {}
    missing: list[str] = []
    for peer in peer_samples:
        try:
            raw = json.loads((root / peer.name / name).read_text(encoding="utf-8"))
            theirs = [k for k in (keys.HostKey.from_json(r) for r in raw["keys"]) if k is not None]
        except (OSError, ValueError, KeyError, TypeError):
            missing.append(peer.name)
            continue
        found[f"{peer.config.dut.serial} (bench {peer.name})"] = theirs
    return found, missing


@pytest.mark.etsi("5.4-3-2")
def test_5_4_3_2_no_shared_critical_parameters(dut, bench, test_facts, peer_samples, certlab_evidence_root,
                                               evidence, request):
    """The DUT's host keys are its own: not another sample's, and not a private key in the release images."""
    with allure.step(f"fetch the SSH host keys of {bench.ssh.where} (key exchange only, no login)"):
        bench.ssh.connect()  # the readiness wait after a power-on, and the lab's own access
        try:
            mine, not_obtained = keys.fetch_host_keys(bench.ssh.host, bench.ssh.port, bench.ssh.timeout)
        except OSError as exc:
            raise CertlabError(f"could not read the SSH host keys of {bench.ssh.where}: {exc}") from None
    if not mine:
        raise CertlabError(f"no SSH host key obtained from {bench.ssh.where}: {not_obtained}")
    record = _record(evidence, {"bench": bench.name, "serial": bench.config.dut.serial,
                                "keys": [k.to_json() for k in mine], "not_obtained": not_obtained})
    with allure.step("compare with the host keys the other samples of the model recorded in this run"):
        peers, unrecorded = _peer_keys(peer_samples, certlab_evidence_root, record.name)
        shared = keys.shared_with(mine, peers)
    scanned: dict[str, list[keys.ImageKey]] = {}
    if test_facts.update_images:  # a product delivered without release files says so (absent): nothing to scan
        folder = request.getfixturevalue("firmware_dir")
        for role, file in sorted(test_facts.update_images.items()):
            path = folder / file
            with allure.step(f"scan the release image {file} ({role}) for private keys"):
                if not path.is_file():
                    raise CertlabError(f"{path}: the release file test_facts.update_images.{role} names is not in "
                                       "firmware_dir; copy the manufacturer's release files there")
                if path.stat().st_size > MAX_IMAGE_BYTES:
                    raise CertlabError(f"{path}: larger than {MAX_IMAGE_BYTES} bytes; scan it by hand")
                scanned[file] = keys.scan_image(file, path.read_bytes(), mine)
    problems = [f"host key {k.describe()} is also the host key of sample {peer}" for k, peer in shared]
    problems += keys.image_problems([f for found in scanned.values() for f in found])
    evidence.json("comparison", {
        "host_keys": [k.describe() for k in mine],
        "peers_compared": {p: [k.describe() for k in ks] for p, ks in peers.items()},
        "peers_without_record": unrecorded,
        "images_scanned": {img: [f.describe() for f in found] for img, found in scanned.items()},
        "problems": problems,
    })
    if problems:
        raise DutError("hard-coded critical security parameter: " + "; ".join(problems))
    if not scanned and not peers:
        raise CertlabError("nothing to compare the DUT's host keys with: no release images (test_facts.update_images) "
                           f"and no other sample of the model recorded its keys in this run (peers: "
                           f"{', '.join(unrecorded) or 'none in the inventory'}); run it with a second sample")
    with allure.step(f"{len(mine)} host key(s) distinct from {len(peers)} other sample(s); "
                     f"no private key in {len(scanned)} release image(s)"):
        pass
