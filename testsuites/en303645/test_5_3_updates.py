"""5.3-2-2: the update mechanism is secure; 5.3-1-2: so is every updatable component's (TS 103 701 V1.1.1).

EN 303 645 5.3-2 requires a secure update mechanism: one an attacker cannot misuse. The TS
asks the lab to design attacks and run them: images with no signature, a wrong signature or a
flipped payload byte, a rollback to an older validly signed (vulnerable) release, and an
interruption of the update. Each attack is its own test under the one test case id, so a
certifier sees which attack succeeded. The mechanism (SFTP upload + apply command), its key and
its promises come from IXIT 7-UpdMech; the genuine images from the manufacturer's release files
(test_facts.update_images); the attack images are crafted from them with lab.firmware.

5.3-1-2 runs the same attacks (lab.updates.ATTACKS: unsigned, tampered, wrong key; rollback where
the mechanism's IXIT entry declares anti-rollback) against every mechanism IXIT 6-SoftComp names,
the main firmware's included; a component's facts (version command, release files, whether it
reboots) come from test_facts.component_updates. It runs after the 5.3-2-2 tests.

An image counts as installed when the apply command exits 0 (IXIT: 0 installs, non-zero
rejects) or when the DUT then runs the image's version. The tests are ordered so that the
attacks run while the DUT still runs the firmware it was received with (a changed version is
then visible too), then the genuine update, then the attacks that need it.

Side effects: every test may change the running firmware (that is the point); an accepted
attack image is replaced by the genuine newer release afterwards; the power-loss test cycles the
DUT's power `--power-cuts` times. All tests leave the DUT booted and reachable over SSH.
"""

from __future__ import annotations

from pathlib import Path

import allure
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import support
from lab.errors import CertlabError, DutError
from lab.firmware import parse_image, public_key_hex
from lab.updates import ATTACKS, Attack, UpdateTarget, attack, rollback_problem, update_targets

pytestmark = pytest.mark.bench_state("shell")


@pytest.fixture
def releases(request: pytest.FixtureRequest, test_facts) -> Path:
    """The manufacturer's release files, asked for before the DUT is touched: a product whose IXIT
    says it has no update images (no update mechanism) is INCONCLUSIVE naming that fact, not the
    lab's missing folder, while its ICS keeps 5.3-2 in scope."""
    test_facts.need("update_images")
    return request.getfixturevalue("firmware_dir")


def _main_target(ixit, test_facts) -> UpdateTarget:
    """The main firmware's mechanism as a target (5.3-2-2's subject)."""
    mech = support.update_mechanism(ixit)
    return UpdateTarget(mech, (), test_facts.version_command, test_facts.version_pattern,
                        dict(test_facts.update_images or {}), "test_facts.update_images", True)


def _release(firmware_dir: Path, target: UpdateTarget, role: str):
    """A release file of `target` (its IXIT field names it), parsed."""
    path = firmware_dir / target.image_file(role)
    if not path.is_file():
        raise CertlabError(f"{path}: the {role} release file named in {target.images_field} is missing; "
                           "copy the manufacturer's release files into firmware_dir")
    data = path.read_bytes()
    return data, parse_image(data)


def _deliver(bench, test_facts, target: UpdateTarget, data: bytes, *, image: str, local: Path):
    return support.apply_update(bench, test_facts, target.mech, data, image=image, local=local, target=target)


def _restore_genuine(bench, test_facts, target: UpdateTarget, firmware_dir: Path, evidence, name: str) -> None:
    """After an attack image got in: put the genuine newer release back (best effort, logged)."""
    with allure.step("restore the genuine newer release"):
        try:
            data, _ = _release(firmware_dir, target, "newer")
            back = _deliver(bench, test_facts, target, data, image="genuine newer release (restore)",
                            local=evidence.path(f"{name}-restore.clfw"))
            evidence.json(f"{name}-restore", vars(back))
        except Exception as exc:  # noqa: BLE001 - the verdict (FAIL) is decided; record the DUT's state
            evidence.text(f"{name}-restore-failed.txt", f"{type(exc).__name__}: {exc}")


def _try_attack(bench, test_facts, target: UpdateTarget, firmware_dir, evidence, bad: Attack, lab_key,
                name: str) -> str | None:
    """Send one crafted image to `target`'s mechanism; what went wrong if the DUT installed it, else None."""
    genuine, header = _release(firmware_dir, target, "newer")
    data = bad.craft(genuine, lab_key)
    with allure.step(f"deliver {bad.image} and run `{target.mech.delivery.apply_command}`"):
        attempt = _deliver(bench, test_facts, target, data, image=bad.image, local=evidence.path(f"{name}.clfw"))
    evidence.json(f"{name}-attempt", {**vars(attempt), "installed": attempt.installed, "mechanism": target.mech.id,
                                      "crafted_from": target.image_file("newer"), "header": header.header})
    if not attempt.installed:
        return None
    _restore_genuine(bench, test_facts, target, firmware_dir, evidence, name)
    return f"installed {bad.accepted_means} ({attempt.describe()}; its answer: {attempt.output[:200]!r})"


def _attack(bench, test_facts, ixit, firmware_dir, evidence, *, name: str, lab_key=None) -> None:
    """Send one crafted image to the main firmware's mechanism; FAIL if the DUT installed it."""
    problem = _try_attack(bench, test_facts, _main_target(ixit, test_facts), firmware_dir, evidence, attack(name),
                          lab_key or Ed25519PrivateKey.generate(), name)
    if problem:
        raise DutError(f"the DUT {problem}")


@pytest.mark.etsi("5.3-2-2")
def test_5_3_2_2_unsigned_image_refused(releases, dut, bench, ixit, test_facts, evidence):
    """The newer release with its signature removed must be refused (5.3-2: no unauthenticated images)."""
    _attack(bench, test_facts, ixit, releases, evidence, name="unsigned")


@pytest.mark.etsi("5.3-2-2")
def test_5_3_2_2_tampered_payload_refused(releases, dut, bench, ixit, test_facts, evidence):
    """The newer release with one payload byte flipped (signed header intact) must be refused."""
    _attack(bench, test_facts, ixit, releases, evidence, name="tampered")


@pytest.mark.etsi("5.3-2-2")
def test_5_3_2_2_wrong_key_refused(releases, dut, bench, ixit, test_facts, evidence):
    """The newer release signed with a key the lab made (not the vendor's) must be refused."""
    lab_key = Ed25519PrivateKey.generate()
    mech = support.update_mechanism(ixit)
    vendor_key = mech.signature.public_key_hex if mech.signature else None
    evidence.json("wrong-key-keys", {"lab_public_key": public_key_hex(lab_key), "vendor_public_key_ixit": vendor_key})
    _attack(bench, test_facts, ixit, releases, evidence, name="wrong-key", lab_key=lab_key)


@pytest.mark.etsi("5.3-2-2")
def test_5_3_2_2_valid_update_installs(releases, dut, bench, ixit, test_facts, evidence):
    """The genuine newer release must install and run: the mechanism works (the control for the attacks)."""
    mech = support.update_mechanism(ixit)
    data, header = support.release_image(releases, test_facts, "newer")
    with allure.step(f"deliver the genuine newer release {header.version}"):
        attempt = support.apply_update(bench, test_facts, mech, data, image=f"genuine release {header.version}",
                                       local=evidence.path("valid-newer.clfw"))
    evidence.json("valid-attempt", {**vars(attempt), "installed": attempt.installed, "header": header.header})
    if attempt.exit_status != 0:
        raise DutError(f"the DUT refused the manufacturer's genuine release {header.version} "
                       f"({attempt.describe()}; its answer: {attempt.output[:200]!r})")
    if attempt.after != header.version:
        raise DutError(f"the update command accepted release {header.version} but the DUT runs {attempt.after} afterwards")


@pytest.mark.etsi("5.3-2-2")
def test_5_3_2_2_rollback_refused(releases, dut, bench, ixit, test_facts, evidence):
    """An older, validly signed release (lower security version) must be refused once newer runs."""
    mech = support.update_mechanism(ixit)
    newer, newer_hdr = support.release_image(releases, test_facts, "newer")
    older, older_hdr = support.release_image(releases, test_facts, "older")
    if older_hdr.security_version >= newer_hdr.security_version:
        raise CertlabError(
            f"test_facts.update_images: older {older_hdr.version} has security version {older_hdr.security_version}, "
            f"not below newer {newer_hdr.version} ({newer_hdr.security_version}); no rollback attack can be made")
    with allure.step(f"make sure the DUT runs the newer release {newer_hdr.version}"):
        if support.installed_version(bench, test_facts) != newer_hdr.version:
            first = support.apply_update(bench, test_facts, mech, newer, image=f"genuine release {newer_hdr.version}",
                                         local=evidence.path("rollback-newer.clfw"))
            evidence.json("rollback-precondition", vars(first))
            if first.after != newer_hdr.version:
                raise CertlabError(f"precondition: the DUT did not install the newer release {newer_hdr.version} "
                                   f"({first.describe()}); see 5.3-2-2 valid update")
    with allure.step(f"deliver the older release {older_hdr.version}"):
        attempt = support.apply_update(bench, test_facts, mech, older, image=f"older release {older_hdr.version}",
                                       local=evidence.path("rollback-older.clfw"))
    anti = mech.anti_rollback
    evidence.json("rollback-attempt", {**vars(attempt), "installed": attempt.installed, "older": older_hdr.header,
                                       "newer": newer_hdr.header,
                                       "ixit_anti_rollback": anti.model_dump() if anti else None})
    if attempt.installed:
        _restore_genuine(bench, test_facts, _main_target(ixit, test_facts), releases, evidence, "rollback")
        raise DutError(
            f"the DUT installed the older release {older_hdr.version} (security version {older_hdr.security_version} "
            f"< {newer_hdr.security_version} of the running {newer_hdr.version}): rollback to a vulnerable image "
            f"is possible ({attempt.describe()})" + ("" if anti and anti.enabled else "; the IXIT declares no anti-rollback"))


@pytest.mark.etsi("5.3-2-2")
def test_5_3_2_2_power_loss_during_update_leaves_bootable_device(releases, dut, bench, ixit, test_facts, evidence, rng,
                                                                 power_cuts):
    """Cutting power while an update is written must leave a DUT that boots a valid firmware.

    First one undisturbed update measures how long the apply command runs (the write window);
    then `--power-cuts` times: upload, start the apply command, cut power at a seeded random
    moment inside that window, power on. The DUT must reach its boot banner, come back over SSH
    and run either the firmware it ran before or the new one.
    """
    mech = support.update_mechanism(ixit)
    data, header = support.release_image(releases, test_facts, "newer")
    local = evidence.path("power-loss-newer.clfw")
    with allure.step("measure an undisturbed update (the window for the cuts)"):
        window, command = support.measure_update_window(bench, test_facts, mech, data, header, local, evidence)
    rows: list[dict] = []
    try:
        for i in range(1, power_cuts + 1):
            at = rng.uniform(0.05, 0.95) * window
            why = f"a power cut {at:.2f} s into installing {header.version} (cut {i} of {power_cuts})"
            with allure.step(f"cut {i}/{power_cuts}: power off {at:.2f} s into the update"):
                before = support.installed_version(bench, test_facts)
                bench.ssh.put(local, mech.delivery.upload_path)
                row = {"cut": i, "during": f"update to {header.version}", "before": before,
                       **support.run_and_cut(bench, command, at)}
                rows.append(row)
                row.update(support.restore_power_after_cut(bench, test_facts, why=why))
                row["after"] = support.installed_version(bench, test_facts)
                row["outcome"] = "ok" if row["after"] in (before, header.version) else "unexpected version"
                if row["after"] not in (before, header.version):
                    raise DutError(f"after {why} the DUT runs {row['after']}, neither the old {before} "
                                   f"nor the new {header.version}")
    except AssertionError as exc:
        if rows:
            rows[-1].setdefault("outcome", f"FAIL: {str(exc)[:200]}")
        raise
    finally:
        evidence.json("power-loss-cuts", {"window_s": round(window, 3), "image": header.header, "cuts": rows})


@pytest.mark.etsi("5.3-1-2")
def test_5_3_1_2_every_component_update_mechanism_resists_the_attacks(request, dut, bench, ixit, test_facts, evidence):
    """5.3-2-2's attacks against every component's update mechanism (IXIT 6-SoftComp -> 7-UpdMech): each
    must refuse an unsigned, a tampered and a foreign-signed image, install its genuine newer release
    (the control), and refuse its older one where it declares anti-rollback."""
    targets = update_targets(ixit, test_facts)
    firmware_dir: Path = request.getfixturevalue("firmware_dir")
    lab_key = Ed25519PrivateKey.generate()
    evidence.json("targets", {"lab_public_key": public_key_hex(lab_key),
                              "component_updates": sorted(test_facts.component_updates or {}),
                              "mechanisms": [{"mechanism": t.mech.id, "components": t.components, "images": t.images,
                                              "reboots": t.reboots} for t in targets]})
    problems: list[str] = []
    for target in targets:
        slug = target.mech.id
        with allure.step(f"attack {target.name}"):
            for bad in ATTACKS:
                problem = _try_attack(bench, test_facts, target, firmware_dir, evidence, bad, lab_key, f"{slug}-{bad.name}")
                if problem:
                    problems.append(f"{target.name} {problem}")
            newer, newer_hdr = _release(firmware_dir, target, "newer")
            if support.target_version(bench, target) != newer_hdr.version:
                with allure.step(f"control: the genuine newer release {newer_hdr.version}"):
                    control = _deliver(bench, test_facts, target, newer, image=f"genuine release {newer_hdr.version}",
                                       local=evidence.path(f"{slug}-valid.clfw"))
                    evidence.json(f"{slug}-valid-attempt", {**vars(control), "installed": control.installed})
                if control.exit_status != 0 or control.after != newer_hdr.version:
                    problems.append(f"{target.name} did not install the manufacturer's genuine release {newer_hdr.version} "
                                    f"({control.describe()}): the component cannot be updated")
                    continue
            anti = target.mech.anti_rollback
            if not (anti and anti.enabled):
                evidence.text(f"{slug}-rollback.txt", "no rollback attack: the IXIT declares no anti-rollback")
                continue
            older, older_hdr = _release(firmware_dir, target, "older")
            why = rollback_problem(older_hdr, newer_hdr, target.images_field)
            if why:
                raise CertlabError(why)
            with allure.step(f"rollback: deliver the older release {older_hdr.version}"):
                attempt = _deliver(bench, test_facts, target, older, image=f"older release {older_hdr.version}",
                                   local=evidence.path(f"{slug}-rollback.clfw"))
            evidence.json(f"{slug}-rollback-attempt", {**vars(attempt), "installed": attempt.installed})
            if attempt.installed:
                _restore_genuine(bench, test_facts, target, firmware_dir, evidence, f"{slug}-rollback")
                problems.append(f"{target.name} installed the older release {older_hdr.version} (security version "
                                f"{older_hdr.security_version} < {newer_hdr.security_version}) although its IXIT declares "
                                f"anti-rollback ({attempt.describe()})")
    if problems:
        raise DutError("; ".join(problems))
