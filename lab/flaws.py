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


FLAWS: dict[str, Flaw] = {
    f.id: f
    for f in (
        Flaw("universal_default_password", "every unit ships with the same login", ("5.1-1",)),
        Flaw("guessable_password", "per-unit password derived from the MAC address", ("5.1-2",)),
        Flaw("no_bruteforce_protection", "unlimited fast SSH login attempts", ("5.1-5",)),
        Flaw("cleartext_credentials", "cloud login and telemetry without TLS", ("5.5-1", "5.5-6", "5.8-1")),
        Flaw("unsigned_update_accepted", "installs images with no or a wrong signature", ("5.3-2",)),
        Flaw("tampered_update_accepted", "signature checked over the header only", ("5.3-2",)),
        Flaw("rollback_allowed", "accepts a validly signed older image", ("5.3-2",)),
        # 5.9-2-2 never sees it: 5.3-2-2's cut mid-update has bricked the sample before (sample-unusable)
        Flaw("update_bricks_on_power_loss", "no A/B slots: a cut mid-update bricks it", ("5.3-2",)),
        Flaw("non_atomic_config_write", "config written in place: a cut mid-write corrupts it", ("5.9-2",)),
        Flaw("open_debug_service", "undocumented debug shell listening on the network", ("5.6-1",)),
        Flaw("unauthenticated_console", "root shell on the serial console with no login", ("5.6-4",)),
        Flaw("factory_reset_keeps_data", "user data survives a factory reset", ("5.11-1",)),
        Flaw("password_change_ineffective", "passwd reports success but keeps the old password", ("5.1-4",)),
        Flaw("weak_ssh_algorithms", "SSH server also offers broken algorithms (3DES-CBC, HMAC-MD5)",
             ("5.5-1", "5.5-6", "5.5-7", "5.8-1")),  # the SSH session also carries personal data (IXIT)
        # the product documents a telnet login (15-Intf, 11-ComMech): the lab logs in there and sees the password in clear
        Flaw("cleartext_telnet_login", "documented telnet login: the root password crosses the network in clear",
             ("5.5-1", "5.5-6", "5.5-7")),
        Flaw("crashes_on_malformed_input", "malformed SSH identification kills sshd; an over-long console line hangs the console",
             ("5.13-1",)),
    )
}

LAB_FAULTS: dict[str, str] = {
    "relay_unresponsive": "the relay accepts the connection but never answers",
    "console_silent": "the console port opens but no byte ever arrives",
    "ssh_unreachable": "the DUT's network attachment is down (link cut)",
    "bench_dies_midrun": "the relay process dies in the middle of a run",
}
