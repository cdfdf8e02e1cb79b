"""The simulated lab's fixed flaw and lab-fault ids, with what each should trip.

Kept as data in one place: the inventory validates against it, the simulator implements it and
the detection matrix checks that every flaw is caught in its provision. A provision is listed
only where an automated test case really FAILs on the flaw (the matrix shows it): a provision
the flaw touches in principle but no suite tests (5.3-10, 5.5-4) is not claimed here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flaw:
    id: str
    what: str
    provisions: tuple[str, ...]
    # the behaviour is the booted firmware's software (a service it starts, how its SSH server, TLS
    # client or discovery answer behave): a release can carry it (lab/sim/fwmanifest.py), not only
    # the unit's inventory; hardware, boot loader, update agent and cloud-side flaws cannot
    firmware_borne: bool = False


FLAWS: dict[str, Flaw] = {
    f.id: f
    for f in (
        Flaw("universal_default_password", "every unit ships with the same login", ("5.1-1",)),
        Flaw("guessable_password", "per-unit password derived from the MAC address", ("5.1-2",)),
        Flaw("no_bruteforce_protection", "unlimited fast SSH login attempts", ("5.1-5",), firmware_borne=True),
        Flaw("cleartext_credentials", "cloud login and telemetry without TLS", ("5.5-1", "5.5-6", "5.8-1"), firmware_borne=True),
        Flaw("unsigned_update_accepted", "installs images with no or a wrong signature", ("5.3-2",)),
        Flaw("tampered_update_accepted", "signature checked over the header only", ("5.3-2",)),
        Flaw("rollback_allowed", "accepts a validly signed older image", ("5.3-2",)),
        # 5.9-2-2 never sees it: 5.3-2-2's cut mid-update has bricked the sample before (sample-unusable)
        Flaw("update_bricks_on_power_loss", "no A/B slots: a cut mid-update bricks it", ("5.3-2",)),
        Flaw("non_atomic_config_write", "config written in place: a cut mid-write corrupts it", ("5.9-2",)),
        Flaw("open_debug_service", "undocumented debug shell listening on the network", ("5.6-1",), firmware_borne=True),
        Flaw("unauthenticated_console", "root shell on the serial console with no login", ("5.6-4",)),
        Flaw("factory_reset_keeps_data", "user data survives a factory reset", ("5.11-1",)),
        Flaw("password_change_ineffective", "passwd reports success but keeps the old password", ("5.1-4",)),
        Flaw("weak_ssh_algorithms", "SSH server also offers broken algorithms (3DES-CBC, HMAC-MD5)",
             ("5.1-3", "5.5-1", "5.5-6", "5.5-7", "5.8-1"), firmware_borne=True),  # the SSH session also carries personal data (IXIT)
        # the product documents a telnet login (15-Intf, 11-ComMech): the lab logs in there and sees the password in clear
        Flaw("cleartext_telnet_login", "documented telnet login: the root password crosses the network in clear",
             ("5.1-3", "5.5-1", "5.5-6", "5.5-7"), firmware_borne=True),
        Flaw("crashes_on_malformed_input", "malformed SSH identification kills sshd; an over-long console line hangs the console",
             ("5.13-1",)),
        Flaw("weak_auth_crypto", "the SSH login channel also negotiates the SHA-1 key exchange diffie-hellman-group14-sha1, which the IXIT does not document", ("5.1-3",), firmware_borne=True),
        Flaw("component_update_unsigned", "a second updatable component (the radio co-processor firmware) installs unsigned images", ("5.3-1",)),
        Flaw("undocumented_update_service", "an undocumented firmware-upload web page listens (tcp/8080, in no IXIT list)", ("5.3-10", "5.6-1"), firmware_borne=True),
        Flaw("wrong_model_designation", "the device reports a model designation other than the documented one", ("5.3-16",)),
        Flaw("secrets_in_clear_at_rest", "the Wi-Fi key (and the cloud token beside it) is stored in clear in a world-readable file", ("5.4-1",)),
        Flaw("shared_host_key", "the SSH host key is baked into the firmware: every unit shares it, its private half is in every release image", ("5.4-3",)),
        Flaw("undocumented_security_impl", "the SSH/TLS implementation and version the device exposes differ from IXIT 12", ("5.5-2",), firmware_borne=True),
        Flaw("unauthenticated_network_function", "the SSH server gives root a session with authentication method none", ("5.5-4", "5.5-5"), firmware_borne=True),
        Flaw("settings_change_without_auth", "after a factory reset, SSH takes method none (so config set) until the owner's first login", ("5.5-5",)),
        Flaw("verbose_discovery", "the SSDP discovery answer discloses serial number, MAC address and firmware version", ("5.6-2",), firmware_borne=True),
        # it never detects the tampering, so it cannot alert either: 5.7-2-2 fails on it too
        Flaw("secure_boot_bypass", "the boot loader boots a tampered or foreign-signed image unverified", ("5.7-1", "5.7-2")),
        Flaw("no_tamper_alert", "a tamper attempt raises no alert and leaves network use unrestricted", ("5.7-2",)),
        # the schedule is personal data too, and crosses unencrypted: 5.8-1-2 and 5.5-1-2 see it in clear as well
        Flaw("sensitive_data_cleartext", "the occupancy schedule (sensitive personal data) also goes to the cloud in a plain UDP datagram",
             ("5.8-2", "5.8-1", "5.5-1"), firmware_borne=True),
        Flaw("no_reconnect_after_link_loss", "after the network link returns the device never resumes its telemetry", ("5.9-1",)),
        Flaw("reconnect_storm", "reconnects immediately and at a fixed rate, without back-off or jitter", ("5.9-3",)),
        Flaw("deletion_unconfirmed", "the deletion command completes silently, without the documented confirmation", ("5.11-4",)),
        Flaw("accepts_any_certificate", "the TLS client accepts a certificate from any CA (no server authentication)", ("5.5-1",), firmware_borne=True),
        # the manufacturer's site and associated service (issue 17): judged by the lab from outside the device
        Flaw("disclosure_policy_behind_login", "the vulnerability disclosure policy page redirects to a login", ("5.2-1",)),
        Flaw("security_txt_expired", "/.well-known/security.txt is signed but its Expires date has passed", ("5.2-1",)),
        Flaw("support_period_mismatch", "the support page states an earlier end of security updates than the IXIT", ("5.3-13",)),
        Flaw("non_updatable_rationale_missing", "the non-updatable product's page omits why it cannot be updated and its replacement", ("5.3-14",)),
        Flaw("auto_update_off_by_default", "a newly paired device has automatic updates switched off", ("5.3-6",)),
        Flaw("cloud_keeps_deleted_data", "deleting the account leaves the device's readings in the cloud and goes on recording it; its next owner sees them all", ("5.11-2",)),
        Flaw("stores_before_consent", "the cloud stores the readings of a paired device from pairing until the owner first decides on consent", ("6-2",)),
        Flaw("consent_withdrawal_ignored", "withdrawing consent is acknowledged but the cloud keeps storing readings", ("6-3",)),
    )
}


def firmware_borne_flaws() -> frozenset[str]:
    """The flaws a firmware release can carry (`certlab sim release --enable`)."""
    return frozenset(f.id for f in FLAWS.values() if f.firmware_borne)


LAB_FAULTS: dict[str, str] = {
    "relay_unresponsive": "the relay accepts the connection but never answers",
    "console_silent": "the console port opens but no byte ever arrives",
    "ssh_unreachable": "the DUT's network attachment is down (link cut)",
    "bench_dies_midrun": "the relay process dies in the middle of a run",
}
