"""5.5-1-2, 5.5-6-2, 5.5-7-2, 5.8-1-2, 5.8-2-2: the DUT's communication is protected as its IXIT says.

EN 303 645 5.5-1 requires best-practice cryptography for communication, 5.5-6 encryption of
critical security parameters (CSPs) in transit, 5.5-7 their confidentiality on remotely
accessible network interfaces, 5.8-1 protection of personal data in transit. TS 103 701 checks
each by observing the traffic of the mechanisms the IXIT lists (11-ComMech): TLS where the IXIT
says TLS, an acceptable protocol version and cipher suite, and nothing confidential in clear
text. The four test cases share one capture per bench:

- the lab captures the DUT's traffic (`net.capture`, on the bench interface, DUT address only)
  for one telemetry interval plus a margin (test_facts.telemetry_interval_seconds), and within
  that window opens its own session on each remotely reachable mechanism it can drive (SSH with
  the lab's login; a TLS handshake; a login on a documented clear-text interface, telnet, plain
  HTTP basic auth or FTP, as the account the IXIT names with the inventory's password, never a
  guessed one), so those flows are in the capture too;
- a clear-text login the DUT accepted FAILs every case whose scope holds its mechanism
  ("telnet on port 23 accepted the login of user root in clear text (captured in ...)"); the
  exchange, password masked, is in clear-text-logins.json;
- every TCP flow is reassembled and matched with the ComMech entries by port and direction
  (outgoing: the peer's port; remotely reachable: the DUT's port);
- a `tls: true` mechanism must begin with a TLS handshake record from the client, negotiate
  TLS 1.2 or newer, offer nothing older, and pick no broken cipher suite; an SSH mechanism must
  speak SSH 2 and its server offer no broken algorithm (3DES, RC4, MD5 MACs, DH group 1, DSA);
- a flow the window's edges cut (no client bytes inside the window, or opened before the
  capture began) is recorded as "not judged" and never fails; its bytes are still scanned for
  clear text. A mechanism whose every flow was cut counts as one without traffic (below); if
  none of its connections was ever answered, the lab network is at fault (INCONCLUSIVE);
- no clear-text payload may carry the device's serial number, the lab's login password,
  credential words (LOGIN, token, password) or the data the IXIT says the mechanisms carry
  (11-ComMech carries.what, 24-TelData ids);
- an outgoing mechanism with no flow in the window FAILs: the DUT did not communicate as its
  IXIT says, so its protection could not be shown.

Each test case checks the mechanisms in its scope: 5.5-1-2 all of them (clear-text scan of
every flow for everything confidential); 5.5-6-2 every mechanism carrying CSPs (carries.credentials,
or named by a critical 10-SecParam entry), whose flows must be encrypted (clear-text scan of every
flow for CSPs); 5.5-7-2 only those of them the IXIT marks remotely reachable (remote_access: true;
clear-text scan of the connections made to the DUT); 5.8-1-2 those carrying personal data; 5.8-2-2
those carrying sensitive personal data (21-PersData sensitive: true and its communication_mechanisms,
or carries.sensitive_personal_data), which must be encrypted, and the scan of every flow looks for
the sensitive data as the IXIT says it appears (21-PersData appears_as). Matching flows with a
mechanism needs its remote_access: a mechanism in scope without it is INCONCLUSIVE, naming the field.

5.5-1-2 also has a man-in-the-middle unit, after the capture: for at most the capture's window
(two telemetry intervals and a margin, ended as soon as each port shows an outcome) the lab's
gateway redirects the DUT's new connections to each outgoing `tls: true` mechanism's port to a
listener that presents a certificate for the documented peer name from a CA made for this test
(`net.intercept_tls`). Completing the handshake and sending application data FAILs ("accepted a
certificate from an untrusted CA"); an alert, reset or close refuses it. No intercepted connection
that shows either is INCONCLUSIVE (unless the capture's checks already FAIL).
Side effects: the lab's SSH connection is closed and reopened once (to capture a full login); the
DUT's telemetry connections during the interception fail (a conforming DUT retries as documented).
"""

from __future__ import annotations

import socket
import ssl
import time

import allure
import pytest

import support
from lab.errors import CertlabError, DutError, NetworkFault
from lab.ixit import ComMech
from lab.logins import LoginExchange, clear_login_kind, ftp_login, http_basic_login, telnet_login
from lab.traffic.cleartext import clear_logins, csp_markers, excerpt, leak_markers, scan_clear_text
from lab.traffic.flows import Flow, Traffic, build_flows
from lab.traffic.mitm import judge_mitm
from lab.traffic.sensitive import sensitive_scope
from lab.traffic.ssh import parse_ssh
from lab.traffic.tls import TLS12, TLS_VERSIONS, WEAK_CIPHER_WORDS, parse_tls

pytestmark = pytest.mark.bench_state("shell")

MAX_WINDOW_S = 900.0  # no capture runs longer than this, whatever the IXIT says
MARGIN_S = 2.0


# --- the shared capture -------------------------------------------------------------------


@pytest.fixture(scope="module")
def captures() -> dict[str, Traffic]:
    """One capture per bench, shared by the three test cases of this module."""
    return {}


LISTEN_ONLY_WINDOW_S = 10.0  # a device that never connects out: the window holds the lab's own sessions


def _window(test_facts, ixit) -> tuple[float, float]:
    """(telemetry interval, capture window). A device whose every 11-ComMech entry is remotely
    reachable (it only listens) and whose IXIT says it sends no telemetry gets a short window
    for the lab's own sessions; otherwise two telemetry intervals are watched."""
    interval = test_facts.telemetry_interval_seconds
    if not interval and ixit.com_mech and all(m.remote_access for m in ixit.com_mech):
        return 0.0, LISTEN_ONLY_WINDOW_S
    if interval is None:
        raise CertlabError("ixit: test_facts.telemetry_interval_seconds is not set; the lab needs it to know how long "
                           "to watch the DUT's communication (add the telemetry interval in seconds)")
    # two full intervals: a device whose timer was just reset by a boot still talks at least once
    window = interval * 2 + MARGIN_S
    if window > MAX_WINDOW_S:
        raise CertlabError(f"ixit: test_facts.telemetry_interval_seconds {interval}: a capture of {window:.0f} s is longer "
                           f"than the lab's bound of {MAX_WINDOW_S:.0f} s; capture this product by hand")
    return interval, window


def login_account(ixit, mech: ComMech, bench) -> tuple[str, str] | str:
    """(user, password) for the lab's login on `mech`, or why the lab cannot log in there.

    The account is the one the IXIT names: the 1-AuthMech of the 15-Intf on the mechanism's
    port (15-Intf authentication, or 1-AuthMech interfaces). The password is the one the
    inventory holds for that account (the lab's login); no other account is ever tried.
    """
    transport = mech.transport or "tcp"
    intfs = [i for i in ixit.intf if i.port == mech.port and (i.transport or "tcp") == transport]
    ids = {a for i in intfs for a in i.authentication}
    auths = [a for a in ixit.auth_mech if a.id in ids or any(i.id in a.interfaces for i in intfs)]
    users = sorted({a.user for a in auths if a.user})
    if not users:
        return (f"no 1-AuthMech entry names the account of the 15-Intf on {transport}/{mech.port} (add the "
                "interface to its authentication, and user: to the 1-AuthMech entry)")
    lab_user = bench.config.ssh.user
    if lab_user not in users:
        return f"the inventory holds the password of {lab_user!r} only, and the IXIT's account here is {users[0]!r}"
    password = bench.ssh_password()
    if not password:
        return f"the inventory holds no password for {lab_user!r}"
    return lab_user, password


def _clear_login(bench, ixit, mech: ComMech) -> LoginExchange | str:
    """The lab's login on a clear-text interface (telnet, plain HTTP basic auth, FTP) with the IXIT's account."""
    account = login_account(ixit, mech, bench)
    if isinstance(account, str):
        return account
    user, password = account
    address, kind = bench.config.network.address, clear_login_kind(mech.protocol)
    if kind == "telnet":
        p = bench.prompts
        return telnet_login(address, mech.port, user, password, login_prompt=p.login_prompt,
                            password_prompt=p.password_prompt, shell_prompt=p.shell_prompt,
                            login_incorrect=p.login_incorrect)
    if kind == "ftp":
        return ftp_login(address, mech.port, user, password)
    return http_basic_login(address, mech.port, user, password)


def _exercise(bench, ixit, test_facts) -> tuple[dict[str, str], dict[str, LoginExchange]]:
    """Open the lab's own session on each remotely reachable mechanism it knows how to drive."""
    done: dict[str, str] = {}
    logins: dict[str, LoginExchange] = {}
    for mech in ixit.com_mech:
        if not mech.remote_access or mech.port is None or mech.transport != "tcp":
            continue
        if mech.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            try:
                with socket.create_connection((bench.config.network.address, mech.port), timeout=5) as raw:
                    with ctx.wrap_socket(raw) as tls:
                        done[mech.id] = f"TLS handshake by the lab ({tls.version()})"
            except (OSError, ssl.SSLError) as exc:
                done[mech.id] = f"TLS handshake by the lab failed: {exc}"
        elif "ssh" in mech.protocol.lower() and mech.port == bench.config.ssh.port:
            bench.ssh.close()  # a fresh connection: key exchange and password login in the capture
            support.ssh_output(bench, test_facts.version_command)
            done[mech.id] = f"SSH login by the lab and `{test_facts.version_command}`"
        elif clear_login_kind(mech.protocol):
            got = _clear_login(bench, ixit, mech)
            if isinstance(got, str):
                done[mech.id] = f"{mech.protocol} login not tried: {got}"
            else:
                logins[mech.id] = got
                done[mech.id] = f"{got.protocol} login by the lab as {got.user!r}: {got.outcome} ({got.detail})"
    return done, logins


def traffic_for(captures: dict[str, Traffic], bench, net, ixit, test_facts, evidence) -> tuple[Traffic, bool]:
    """The bench's capture (made now if this is the first of the three test cases); True if new."""
    if bench.name in captures:
        return captures[bench.name], False
    interval, window = _window(test_facts, ixit)
    pcap = evidence.path("communication.pcap")
    every = f"telemetry every {interval:g} s" if interval else "no outgoing communication in the IXIT"
    with allure.step(f"capture the DUT's traffic for {window:.1f} s ({every})"):
        with net.capture(pcap) as cap:
            start = time.monotonic()  # the window counts once the sniffer runs
            exercised, logins = _exercise(bench, ixit, test_facts)
            time.sleep(max(0.0, start + window - time.monotonic()))
    with allure.step(f"reassemble {len(cap.packets)} packets into flows"):
        flows = build_flows(cap.packets)
    if logins:
        evidence.json("clear-text-logins", {mid: ex.as_dict() for mid, ex in logins.items()})
    traffic = Traffic(str(pcap), window, interval, flows, exercised, logins)
    captures[bench.name] = traffic
    return traffic, True


# --- the checks ---------------------------------------------------------------------------


def remote_access(mech: ComMech) -> bool:
    """Whether the IXIT marks `mech` remotely reachable; without the answer its flows cannot be matched."""
    if mech.remote_access is None:
        raise CertlabError(f"ixit: 11-ComMech entry {mech.id!r}: field remote_access is not set; the lab needs it to "
                           "tell a remotely reachable mechanism (the DUT listens) from an outgoing one "
                           "(add remote_access: true or false)")
    return mech.remote_access


def csp_mechanisms(ixit) -> set[str]:
    """11-ComMech ids carrying critical security parameters: carries.credentials, or named by a critical 10-SecParam."""
    named = {ref for p in ixit.sec_param if p.type == "critical" for ref in p.communication_mechanisms}
    return {m.id for m in ixit.com_mech if m.carries.credentials or m.id in named}


def _flows_of(mech: ComMech, traffic: Traffic, dut: str) -> list[Flow]:
    if mech.port is None:
        return []
    transport = mech.transport or "tcp"
    if remote_access(mech):
        return [f for f in traffic.flows if f.transport == transport and f.server == (dut, mech.port)]
    return [f for f in traffic.flows if f.transport == transport and f.client[0] == dut and f.server[1] == mech.port]


def _not_judged(flow: Flow, mech: ComMech) -> str | None:
    """Why the capture cannot show how `flow` began (so its protocol is not judged), or None.

    A capture window has edges: a connection opened just before it ends may have no client
    bytes inside it, and one opened before it began shows only its middle. Neither says
    anything about the protocol the DUT uses; the clear-text scan still covers their bytes.
    """
    if not flow.c2s:
        return ("no client payload inside the capture window (its first client bytes, if any, fell outside "
                "the window)")
    if mech.tls and flow.kind == "tls" and "ClientHello" in parse_tls(flow).get("cut", []):
        return "its ClientHello is cut short in the capture (the window ended inside it, or a segment was lost)"
    if not flow.opened_in_window:
        began = flow.kind == "tls" if mech.tls else flow.kind == "ssh"
        if not began:
            return "opened before the capture began: its first bytes are not in the capture"
    return None


def _unjudged_only(mech: ComMech, where: str, flows: list[Flow], traffic: Traffic) -> str:
    """All of a mechanism's flows were cut by the window's edges: the 'no traffic' case, in words.

    Returns the problem (outgoing: FAIL, as with no traffic at all). Raises NetworkFault when
    the lab is to blame: no connection was ever answered, or the lab's own session is incomplete.
    """
    listed = "; ".join(f"{f.name}: {_not_judged(f, mech)}" for f in flows[:5])
    if mech.remote_access:
        raise NetworkFault(f"the lab's own session on {where} ({traffic.exercised[mech.id]}) shows no complete start "
                           f"in the capture {traffic.pcap} ({listed}); the capture is not seeing the bench network")
    if all(f.server_packets == 0 for f in flows):
        raise NetworkFault(f"the DUT opened {len(flows)} connection(s) to {mech.peer}:{mech.port} in "
                           f"{traffic.window_s:.0f} s and none was answered ({listed}); the lab network does not reach "
                           "the peer, so the mechanism's protection could not be observed")
    return (f"{where}: {len(flows)} connection(s) to {mech.peer}:{mech.port} in {traffic.window_s:.0f} s, but none "
            f"began with client data inside the window ({listed}) although the IXIT says the device communicates "
            f"every {traffic.interval_s:g} s; its protection could not be observed")


def check_mechanism(mech: ComMech, traffic: Traffic, dut: str, secrets: list[str], *,
                    csp: bool = False, carried: str = "critical security parameters") -> tuple[dict, list[str]]:
    """One ComMech entry against its flows: (summary, problems).

    A flow the capture window cut (see `_not_judged`) is listed as not judged and never fails;
    when every flow of the mechanism was cut, it is handled like a mechanism without traffic.
    `csp`: the mechanism carries critical security parameters (or what `carried` names), so its
    payload must be encrypted.
    """
    where = f"{mech.id} ({mech.peer}:{mech.port})"
    flows = _flows_of(mech, traffic, dut)
    summary: dict = {"mechanism": mech.id, "peer": mech.peer, "port": mech.port, "tls": mech.tls,
                     "remote_access": mech.remote_access, "exercised_by_lab": traffic.exercised.get(mech.id),
                     "flows": []}
    problems: list[str] = []
    if mech.port is None:
        summary["note"] = "no port in 11-ComMech: not matched with the capture"
        return summary, problems
    if not flows:
        if not mech.remote_access:
            problems.append(f"{where}: no traffic to {mech.peer}:{mech.port} in {traffic.window_s:.0f} s although the "
                            f"IXIT says the device communicates every {traffic.interval_s:g} s; its protection could "
                            "not be observed")
        elif mech.id in traffic.exercised:
            raise NetworkFault(f"the lab's own session on {where} ({traffic.exercised[mech.id]}) is missing from the "
                               f"capture {traffic.pcap}; the capture is not seeing the bench network")
        else:
            summary["note"] = "remotely reachable mechanism the lab cannot drive: not exercised"
        return summary, problems
    protocol_checked = mech.tls or "ssh" in mech.protocol.lower()
    if csp and not protocol_checked:
        if mech.encrypted:
            summary["note"] = (f"carries {carried} over {mech.protocol}, encrypted as the IXIT says in a way the lab "
                               "cannot parse: only the clear-text scan applies")
        else:
            clear = [f for f in flows if f.c2s or f.s2c]
            if clear:
                problems.append(f"{where} carries {carried} without encryption (IXIT: encrypted: "
                                f"false, protocol {mech.protocol}); the capture shows {len(clear)} connection(s) with "
                                f"clear payload, e.g. {clear[0].name}")
    judged = 0
    for flow in flows:
        row: dict = {"flow": flow.name, "kind": flow.kind, "bytes_c2s": len(flow.c2s), "bytes_s2c": len(flow.s2c)}
        summary["flows"].append(row)
        why_not = _not_judged(flow, mech) if protocol_checked else None
        if why_not:
            row.update(judged=False, not_judged=why_not)
            with allure.step(f"{where}: {flow.name} not judged: {why_not}"):
                pass
            continue
        judged += 1
        if mech.tls:
            if flow.kind != "tls":
                problems.append(f"{where}: {flow.name} does not start with a TLS handshake record; first client bytes: "
                                f"{excerpt(flow.c2s, 0, secrets)!r}")
            else:
                tls = parse_tls(flow)
                row["tls"] = {k: v for k, v in tls.items() if not k.endswith("_codes")}
                old = [TLS_VERSIONS.get(v, hex(v)) for v in tls.get("offered_codes", []) if v < TLS12]
                if tls.get("client_hello") and old and max(tls["offered_codes"]) < TLS12:
                    problems.append(f"{where}: {flow.name}: the DUT offers at most {old[-1]} (IXIT: TLS 1.2 or newer)")
                elif old:
                    problems.append(f"{where}: {flow.name}: the DUT also offers {', '.join(old)}, open to downgrade "
                                    "(best practice: TLS 1.2 or newer only)")
                if tls.get("server_hello"):
                    if tls["version_code"] < TLS12:
                        problems.append(f"{where}: {flow.name}: negotiated {tls['version']}, older than TLS 1.2")
                    if any(w in tls["cipher_suite"] for w in WEAK_CIPHER_WORDS):
                        problems.append(f"{where}: {flow.name}: negotiated the broken cipher suite {tls['cipher_suite']}")
                elif not tls.get("client_hello"):
                    problems.append(f"{where}: {flow.name}: no ClientHello in the TLS records")
        elif protocol_checked:  # SSH
            ssh_info = parse_ssh(flow)
            row["ssh"] = ssh_info
            ident = ssh_info.get("server_ident") or ""
            if not (ident.startswith("SSH-2.0-") or ident.startswith("SSH-1.99-")):
                problems.append(f"{where}: {flow.name}: the server does not speak SSH 2 (identification {ident[:60]!r})")
            if ssh_info.get("weak_offered"):
                problems.append(f"{where}: {flow.name}: the SSH server offers broken algorithms "
                                f"{', '.join(ssh_info['weak_offered'])}, open to downgrade (best practice offers none)")
    summary["not_judged"] = len(flows) - judged if protocol_checked else 0
    if protocol_checked and not judged:
        if mech.remote_access and mech.id not in traffic.exercised:
            summary["note"] = ("remotely reachable mechanism the lab cannot drive: not exercised, and no flow in the "
                               "capture shows its start")
        else:
            problems.append(_unjudged_only(mech, where, flows, traffic))
    return summary, problems


def _summary(traffic: Traffic, dut: str) -> list[dict]:
    return [{"flow": f.name, "kind": f.kind, "packets": f.packets, "bytes_c2s": len(f.c2s), "bytes_s2c": len(f.s2c),
             "dut_is": "client" if f.client[0] == dut else "server"} for f in traffic.flows]


def run_case(case: str, scope: str, select, captures, bench, net, ixit, test_facts, evidence, **how) -> None:
    """`check_case`, and FAIL with every problem found."""
    problems = check_case(case, scope, select, captures, bench, net, ixit, test_facts, evidence, **how)
    if problems:
        raise DutError(f"{case}: {len(problems)} problem(s) in the DUT's communication ({scope}): " + " | ".join(problems))


def check_case(case: str, scope: str, select, captures, bench, net, ixit, test_facts, evidence, *, csp: bool = False,
               inbound_only: bool = False, markers=None, what: str | None = None) -> list[str]:
    """Check the mechanisms `select` picks and scan the capture for clear text; the problems found.

    `csp`: in-scope mechanisms must encrypt (they carry critical security parameters, or `what`),
    and the scan looks for CSPs only (or `markers`, named `what`). `inbound_only`: the scan
    covers only connections made to the DUT (its remotely accessible interfaces).
    """
    dut = bench.config.network.address
    traffic, new = traffic_for(captures, bench, net, ixit, test_facts, evidence)
    if not new:  # the plugin attaches new evidence files; this one was made by an earlier test case
        allure.attach.file(traffic.pcap, name=f"{case} (shared) communication.pcap",
                           attachment_type=allure.attachment_type.PCAP)
    password = bench.ssh_password()
    secrets = [password] if password else []
    mechs = [m for m in ixit.com_mech if select(m)]
    problems: list[str] = []
    checked = []
    with allure.step(f"check {len(mechs)} mechanism(s) of 11-ComMech in scope ({scope})"):
        for mech in mechs:
            summary, found = check_mechanism(mech, traffic, dut, secrets, csp=csp,
                                             carried=what or "critical security parameters")
            checked.append(summary)
            problems += found
    problems = clear_logins(mechs, traffic, dut, secrets) + problems
    if markers is None:
        markers = csp_markers(password) if csp else leak_markers(ixit, bench.config.dut.serial, password)
    scanned = [f for f in traffic.flows if f.server[0] == dut] if inbound_only else traffic.flows
    what = what or ("critical security parameters" if csp else "confidential data")
    where = "connections made to the DUT" if inbound_only else "every flow"
    with allure.step(f"look for {what} in clear text ({where}: {len(scanned)} flow(s))"):
        findings, found = scan_clear_text(traffic, markers, secrets, scanned)
        problems += found
    evidence.json("flows", {"pcap": traffic.pcap, "window_s": traffic.window_s, "interval_s": traffic.interval_s,
                            "scope": scope, "clear_text_scan": f"{what} in {where}",
                            "mechanisms": checked, "clear_text_findings": findings,
                            "flows": _summary(traffic, dut), "problems": problems})
    if not mechs:
        evidence.text("note.txt", f"no 11-ComMech entry is in scope ({scope}); only the clear-text scan applied\n")
    return problems


def mitm_unit(bench, net, ixit, test_facts, evidence) -> tuple[list[str], list[str]]:
    """The man-in-the-middle unit: (problems, why a mechanism could not be judged).

    The lab's gateway answers the DUT's next connections to each outgoing `tls: true` mechanism
    with a certificate for the documented peer name from a CA made for this test; the window is
    the capture's (two telemetry intervals and a margin) and ends once each port has shown an
    outcome.
    """
    mechs = [m for m in ixit.com_mech if m.tls and m.port is not None and (m.transport or "tcp") == "tcp"
             and not remote_access(m)]
    if not mechs:
        evidence.json("mitm", {"note": "11-ComMech has no outgoing TLS mechanism: nothing to intercept"})
        return [], []
    _interval, window = _window(test_facts, ixit)
    ports = {m.port for m in mechs}
    names = [m.peer for m in mechs]
    with allure.step(f"answer the DUT's TLS connections to port(s) {sorted(ports)} with an untrusted certificate "
                     f"(at most {window:.1f} s)"):
        with net.intercept_tls(sorted(ports), names, window_s=window) as mitm:
            mitm.wait_for(ports)
        seen = [c.as_dict() for c in mitm.results]
    judged = [judge_mitm(m.id, m.peer, m.port, seen, window, mitm.certificate.server_names) for m in mechs]
    evidence.text("mitm-ca.pem", mitm.certificate.ca_pem.decode())
    evidence.json("mitm", {"window_s": window, "server_names": list(mitm.certificate.server_names),
                           "redirect_rules": mitm.rules, "mechanisms": [j.as_dict() for j in judged]})
    return ([p for j in judged for p in j.problems],
            [f"{j.mechanism} ({j.port}): {j.not_judged}" for j in judged if j.not_judged])


@pytest.mark.etsi("5.5-1-2")
def test_5_5_1_2_best_practice_crypto(dut, bench, net, ixit, test_facts, captures, evidence):
    """Every 11-ComMech mechanism uses the protocol the IXIT names (TLS >= 1.2, SSH 2); nothing leaks in clear;
    an outgoing TLS mechanism refuses a certificate from an untrusted CA (man in the middle)."""
    problems = check_case("5.5-1-2", "all mechanisms", lambda m: True, captures, bench, net, ixit, test_facts, evidence)
    found, not_judged = mitm_unit(bench, net, ixit, test_facts, evidence)
    problems += found
    if problems:
        raise DutError(f"5.5-1-2: {len(problems)} problem(s) in the DUT's communication (all mechanisms): "
                       + " | ".join(problems))
    if not_judged:
        raise NetworkFault("5.5-1-2 man-in-the-middle unit not judged: " + " | ".join(not_judged))


@pytest.mark.etsi("5.5-6-2")
def test_5_5_6_2_csp_encrypted_in_transit(dut, bench, net, ixit, test_facts, captures, evidence):
    """Every mechanism carrying critical security parameters encrypts them; no CSP travels in clear on any flow."""
    csp = csp_mechanisms(ixit)
    run_case("5.5-6-2", "mechanisms carrying critical security parameters", lambda m: m.id in csp,
             captures, bench, net, ixit, test_facts, evidence, csp=True)


@pytest.mark.etsi("5.5-7-2")
def test_5_5_7_2_csp_confidential_on_remote_interfaces(dut, bench, net, ixit, test_facts, captures, evidence):
    """Remotely reachable mechanisms carrying critical security parameters keep them confidential."""
    csp = csp_mechanisms(ixit)
    run_case("5.5-7-2", "remotely reachable mechanisms carrying critical security parameters",
             lambda m: m.id in csp and remote_access(m), captures, bench, net, ixit, test_facts, evidence,
             csp=True, inbound_only=True)


@pytest.mark.etsi("5.8-1-2")
def test_5_8_1_2_personal_data_protected_in_transit(dut, bench, net, ixit, test_facts, captures, evidence):
    """Mechanisms carrying personal data protect it with best-practice cryptography; none of it travels in clear."""
    run_case("5.8-1-2", "mechanisms carrying personal data",
             lambda m: m.carries.personal_data or m.carries.sensitive_personal_data,
             captures, bench, net, ixit, test_facts, evidence)


@pytest.mark.etsi("5.8-2-2")
def test_5_8_2_2_sensitive_personal_data_protected_in_transit(dut, bench, net, ixit, test_facts, captures, evidence):
    """Mechanisms carrying sensitive personal data (21-PersData sensitive) encrypt it as documented (TLS >= 1.2,
    no broken suite); it shows in clear on no flow."""
    scope = sensitive_scope(ixit)
    evidence.json("sensitive-scope", {"entries": list(scope.entries), "mechanisms": list(scope.mechanisms),
                                      "markers": [what for what, _rx in scope.markers]})
    if not scope.entries and not scope.mechanisms:
        # the IXIT declares none (the assessor weighs that claim in 5.8-2-1): this unit has no object; other
        # confidential data in clear is 5.5-1-2's and 5.8-1-2's finding, not a 5.8-2 one
        with allure.step("21-PersData and 11-ComMech declare no sensitive personal data: nothing to look for"):
            evidence.text("note.txt", "21-PersData has no entry with sensitive: true and no 11-ComMech entry carries "
                                      "sensitive personal data: the functional unit has no object\n")
        return
    run_case("5.8-2-2", "mechanisms carrying sensitive personal data", lambda m: m.id in scope.mechanisms,
             captures, bench, net, ixit, test_facts, evidence, csp=True, markers=list(scope.markers),
             what="sensitive personal data")
