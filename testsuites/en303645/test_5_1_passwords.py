"""5.1 No universal default passwords: the functional test cases 5.1-1-2, 5.1-2-2, 5.1-3-2, 5.1-4-2, 5.1-5-2.

EN 303 645 5.1 asks that passwords be unique per device (or set by the user), not guessable from
public identity, easy to change, and that guessing them over the network be impracticable.
TS 103 701 checks each claim of IXIT 1-AuthMech on the DUT itself. Everything product-specific
comes from the IXIT: the account (`user`), the password scheme (`password_generation`), the
lockout or delay (`brute_force_prevention`) and the change command (`change`); the login path is
the SSH network interface the mechanism lists in 15-Intf (the lab's SSH driver); the console
prompts are the inventory's. 5.1-3-2 reads each SSH interface's offer (KEXINIT) and tries weak-only
negotiations on connections of its own, without logging in (1-AuthMech `ssh_algorithms`).

Every wrong password the lab sends counts against the DUT's documented lockout. The tests stay
under it (batches of `max_attempts - 1` wrong attempts, each batch followed by a login with the
right password, which the IXIT's "consecutive failures" policy resets on) or wait it out, so
the DUT is usable for the next test. A candidate tried while the DUT was locked out proves
nothing: such a batch is tried again once the lockout has passed.
"""

from __future__ import annotations

import re
import string
import time
from dataclasses import asdict

import allure
import pytest

import support
from lab.errors import CertlabError, DutError, ExpectTimeout, NetworkFault, SSHUnreachable
from lab.ixit import AuthMech, Intf, Ixit
from lab.logins import clear_login_kind
from lab.traffic.banner import grab_banner
from lab.traffic.login_budget import NOT_ANSWERED, LoginBudget
from lab.traffic.ssh_algorithms import LISTS, judge, probe_weak, read_server_offer

pytestmark = pytest.mark.bench_state("shell")

# Common factory defaults (5.1-1-2 (a)), mostly from the credential list of the Mirai botnet
# (2016), plus frequent vendor defaults (SecLists "Default-Credentials"). Kept short and fixed
# so the lab can state exactly what it tried: the passwords are tried for the IXIT's account,
# the pairs probe well-known accounts the IXIT does not document.
DEFAULT_PASSWORDS = ("admin", "root", "password", "1234", "12345", "123456", "12345678", "default",
                     "toor", "changeme", "pass", "guest", "888888", "xc3511", "vizxv")
DEFAULT_PAIRS = (("admin", "admin"), ("admin", "password"), ("admin", "1234"), ("root", "root"),
                 ("root", "admin"), ("root", "12345678"), ("user", "user"), ("support", "support"))


# --- which mechanisms, which account -------------------------------------------------------


def _is_lab_ssh(intf: Intf, bench) -> bool:
    """The 15-Intf entry the lab's SSH driver talks to (protocol ssh on the bench's SSH port)."""
    return (intf.kind == "network" and "ssh" in intf.protocol.lower()
            and (intf.port is None or intf.port == bench.config.ssh.port))


def _network_password_mechs(ixit: Ixit, bench) -> tuple[list[AuthMech], list[str]]:
    """Password mechanisms on network interfaces: those the lab drives over SSH, and the others."""
    driven, by_hand = [], []
    for mech in ixit.auth_mech:
        if mech.factor not in ("password", "pin"):
            continue
        intfs = [ixit.interface(i) for i in mech.interfaces]
        if any(_is_lab_ssh(i, bench) for i in intfs):
            driven.append(mech)
        others = [i.id for i in intfs if i.kind == "network" and not _is_lab_ssh(i, bench)]
        if others:
            by_hand.append(f"{mech.id} on {', '.join(others)}")
    return driven, by_hand


def _one_ssh_mech(ixit: Ixit, bench, provision: str) -> AuthMech:
    driven, by_hand = _network_password_mechs(ixit, bench)
    if not driven:
        hint = f" (mechanisms on other network interfaces: {'; '.join(by_hand)}; test them by hand)" if by_hand else ""
        raise CertlabError(f"ixit: 1-AuthMech: no password mechanism on the SSH interface the lab can drive; "
                           f"{provision} cannot be automated{hint}")
    return driven[0]


def _account(mech: AuthMech, bench) -> str:
    return mech.user or bench.config.ssh.user


def _lab_password(bench) -> str:
    password = bench.ssh_password()
    if not password:
        raise CertlabError(f"inventory: bench {bench.name!r}: no ssh.password or dut.label_password; "
                           "the lab needs the DUT's current password")
    return password


# --- login attempts within the documented brute-force budget -------------------------------


# --- 5.1-1-2 -------------------------------------------------------------------------------


@pytest.mark.etsi("5.1-1-2")
def test_5_1_1_2_no_universal_default_password(dut, bench, ixit, peer_samples, evidence):
    """No common factory default and no other sample's label password opens the DUT (5.1-1).

    (a) a short fixed list of common defaults for the IXIT's account over SSH; (b) the label
    passwords of the other samples of this model must not open it, and no other sample may share
    this sample's label password. Side effects: wrong SSH logins, kept under the documented
    lockout (or waited out); ends with a successful login.
    """
    driven, by_hand = _network_password_mechs(ixit, bench)
    if not driven:
        _one_ssh_mech(ixit, bench, "5.1-1-2")  # raises with the reason
    problems: list[str] = []
    report: dict = {"mechanisms": [m.id for m in driven], "not_automated": by_hand, "attempts": [], "peers": []}
    own_label = bench.label_password()
    peer_labels: list[tuple[str, str]] = []  # (who, label password)
    with allure.step(f"(b) compare the label passwords of {len(peer_samples)} other sample(s) of {bench.config.dut.model}"):
        seen: dict[str, str] = {}
        for peer in peer_samples:
            who = f"sample {peer.config.dut.serial} (bench {peer.name})"
            try:
                label = peer.label_password()
            except CertlabError as exc:
                report["peers"].append({"peer": who, "label": f"unavailable: {exc}"})
                continue
            if not label:
                report["peers"].append({"peer": who, "label": "none recorded"})
                continue
            same_as_this = own_label is not None and label == own_label
            report["peers"].append({"peer": who, "same_as_this_sample": same_as_this,
                                    "same_as_other_peer": seen.get(label)})
            if same_as_this:
                problems.append(f"{who} has the same label password as this sample")
            seen.setdefault(label, who)
            peer_labels.append((who, label))
    for mech in driven:
        user = _account(mech, bench)
        peer_candidates = [(f"label password of {who}", user, label) for who, label in peer_labels]
        candidates: list[tuple[str, str, str]] = []
        for password in DEFAULT_PASSWORDS:
            candidates.append((f"common default {user}/{password}", user, password))
        for pair_user, password in DEFAULT_PAIRS:
            if pair_user != user:
                candidates.append((f"common default {pair_user}/{password}", pair_user, password))
        known = {(u, p) for _, u, p in candidates}
        candidates += [c for c in peer_candidates if (c[1], c[2]) not in known]
        budget = LoginBudget(bench, user, _lab_password(bench), mech.brute_force_prevention)
        with allure.step(f"(a)+(b) try {len(candidates)} passwords over SSH for {mech.id}, {budget.batch} per lockout window"):
            tried = budget.guess(candidates)
        for t in tried:
            if t.outcome == "accepted":
                problems.append(f"{t.candidate} opens the DUT over SSH ({mech.id})")
        report["attempts"] += [asdict(t) for t in budget.tried]
        report["right_password_checks"] = budget.checks
        report["lockouts_waited_out"] = budget.lockouts_seen
    evidence.json("logins", report)
    if by_hand:
        evidence.text("not-automated.txt", "Password mechanisms on network interfaces the lab cannot drive "
                      "(test by hand): " + "; ".join(by_hand) + "\n")
    assert not problems, "universal or shared password: " + "; ".join(problems)


# --- 5.1-2-2 -------------------------------------------------------------------------------

CLASSES = {"upper": string.ascii_uppercase, "lower": string.ascii_lowercase, "digit": string.digits}
_REGEX_SYNTAX = set("^$[]{}()*+?.|\\")


def _identity_tokens(serial: str | None, mac: str | None) -> list[tuple[str, str]]:
    """(how, value) of public identity values a guessable password is often made from."""
    tokens: list[tuple[str, str]] = []

    def add(how: str, value: str) -> None:
        if value and len(value) >= 4 and value.lower() not in {v.lower() for _, v in tokens}:
            tokens.append((how, value))

    if mac:
        hexd = re.sub(r"[^0-9A-Fa-f]", "", mac).lower()
        add("the MAC address (hex digits, no separators)", hexd)
        add("the MAC address with ':'", ":".join(hexd[i:i + 2] for i in range(0, 12, 2)))
        add("the MAC address with '-'", "-".join(hexd[i:i + 2] for i in range(0, 12, 2)))
        for n in (4, 6, 8, 10):
            add(f"the last {n} hex digits of the MAC address", hexd[-n:])
        add("the first 6 hex digits of the MAC address (vendor OUI)", hexd[:6])
        add("the MAC address reversed", hexd[::-1])
        add("the MAC address as a decimal number", str(int(hexd, 16)))
        add("the last 6 hex digits of the MAC address as a decimal number", str(int(hexd[-6:], 16)))
    if serial:
        alnum = re.sub(r"[^0-9A-Za-z]", "", serial)
        digits = re.sub(r"\D", "", serial)
        add("the serial number", serial)
        add("the serial number without separators", alnum)
        add("the digits of the serial number", digits)
        add("the serial number reversed", serial[::-1])
        add("the serial number without separators, reversed", alnum[::-1])
        for n in (4, 6, 8):
            add(f"the last {n} characters of the serial number", alnum[-n:])
        if digits:
            add("the digits of the serial number in hex", format(int(digits), "x"))
    return tokens


def _derivations(password: str, tokens: list[tuple[str, str]]) -> list[dict]:
    """One row per identity check: does the password equal, contain or sit inside the value?"""
    pw = password.lower()
    pw_bare = re.sub(r"[^0-9a-z]", "", pw)
    rows = []
    for how, value in tokens:
        v = value.lower()
        v_bare = re.sub(r"[^0-9a-z]", "", v)
        if pw == v or (pw_bare and pw_bare == v_bare):
            found = "equals"
        elif v in pw or (len(v_bare) >= 4 and v_bare in pw_bare):
            found = "contains"
        elif len(pw_bare) >= 4 and pw_bare in v_bare:
            found = "is part of"
        else:
            found = ""
        rows.append({"check": f"password vs {how}", "value": value, "found": found or "no"})
    return rows


def _scheme(password: str, gen) -> list[dict]:
    """The documented scheme's checks: length, character classes, pattern."""
    rows = []
    if gen.length is not None:
        rows.append({"check": f"length is {gen.length}", "ok": len(password) == gen.length,
                     "observed": f"{len(password)} characters"})
    if gen.min_length is not None:
        rows.append({"check": f"length at least {gen.min_length}", "ok": len(password) >= gen.min_length,
                     "observed": f"{len(password)} characters"})
    if gen.character_classes:
        allowed = "".join(CLASSES.get(c, "") for c in gen.character_classes)
        fixed = {c for c in (gen.pattern or "") if not c.isalnum() and c not in _REGEX_SYNTAX}  # separators
        symbols = "symbol" in gen.character_classes
        stray = sorted({c for c in password if c not in allowed and c not in fixed
                        and not (symbols and c in string.punctuation)})
        present = [name for name, chars in CLASSES.items() if any(c in chars for c in password)]
        if any(c in string.punctuation and c not in fixed for c in password):
            present.append("symbol")
        rows.append({"check": f"characters only from {list(gen.character_classes)}"
                              + (f" (and the pattern's separators {sorted(fixed)})" if fixed else ""),
                     "ok": not stray, "observed": f"classes present: {present}; "
                                                  f"{len(stray)} character kind(s) outside the documented classes"})
    if gen.pattern:
        rows.append({"check": f"matches the documented pattern {gen.pattern!r}",
                     "ok": re.fullmatch(gen.pattern, password) is not None, "observed": ""})
    return rows


@pytest.mark.etsi("5.1-2-2")
def test_5_1_2_2_preinstalled_password_not_guessable(dut, bench, ixit, evidence):
    """The label password fits the documented generator and is not derived from serial or MAC (5.1-2).

    First confirms over SSH that the label password is what the DUT really uses (one login),
    then checks it against the IXIT's scheme and against transforms of the sample's public
    identity (serial, MAC). Side effects: one SSH login.
    """
    mechs = [m for m in ixit.auth_mech if m.factor in ("password", "pin") and m.password_generation
             and m.password_generation.kind != "user_defined"]
    if not mechs:
        raise CertlabError("ixit: 1-AuthMech documents no pre-installed (generated) password, but the ICS says "
                           "5.1-2 applies; correct one of them")
    label = bench.label_password()
    if not label:
        raise CertlabError(f"inventory: bench {bench.name!r}: dut.label_password is not set; "
                           "record the password printed on this sample's label")
    facts = bench.config.dut
    problems: list[str] = []
    report: dict = {"sample": {"serial": facts.serial, "mac": facts.mac}, "mechanisms": []}
    for mech in mechs:
        gen = mech.password_generation
        entry: dict = {"mechanism": mech.id, "scheme": gen.model_dump(exclude={"description"})}
        ssh_mech = any(_is_lab_ssh(ixit.interface(i), bench) for i in mech.interfaces)
        if ssh_mech:
            user = _account(mech, bench)
            with allure.step(f"confirm the label password is the DUT's password ({user} over SSH)"):
                attempt = bench.ssh.try_login(user, label)
                if attempt.outcome == "rejected" and mech.brute_force_prevention:  # a lockout left behind?
                    time.sleep((mech.brute_force_prevention.lockout_seconds or 0) + 1)
                    attempt = bench.ssh.try_login(user, label)
                entry["label_login"] = {"outcome": attempt.outcome, "seconds": round(attempt.seconds, 3)}
                if attempt.outcome in NOT_ANSWERED:
                    raise SSHUnreachable(f"SSH login gave {attempt.outcome} ({attempt.detail})", bench=bench.name)
                if attempt.outcome != "accepted":
                    problems.append(f"the password on the label does not open the DUT as {user!r} over SSH "
                                    "(the pre-installed password is not the documented one)")
        with allure.step(f"check the label password against the documented scheme ({gen.kind})"):
            entry["scheme_checks"] = _scheme(label, gen)
            for row in entry["scheme_checks"]:
                if not row["ok"]:
                    problems.append(f"label password does not fit the documented scheme: {row['check']} "
                                    f"({row['observed'] or 'no match'})")
        with allure.step("check the label password against the sample's serial number and MAC address"):
            tokens = _identity_tokens(facts.serial, facts.mac)
            entry["identity_checks"] = _derivations(label, tokens)
            entry["identity_checks_ran"] = len(tokens)
            if not facts.mac:
                entry["note"] = "the inventory records no MAC address for this sample: MAC checks not run"
            rank = {"equals": 0, "contains": 1, "is part of": 2}
            hits = sorted((r for r in entry["identity_checks"] if r["found"] != "no"), key=lambda r: rank[r["found"]])
            problems[:0] = [f"label password {r['found']} {r['check'].removeprefix('password vs ')} ({r['value']}): "
                            "guessable from public identity" for r in hits]
        report["mechanisms"].append(entry)
    evidence.json("password-checks", report)
    assert not problems, "guessable pre-installed password: " + "; ".join(problems)


# --- 5.1-4-2 -------------------------------------------------------------------------------

PASSWORD_QUESTION = re.compile(r"(?i)(password|passcode|pin)[^\n]*:\s*$")
ASKS_CURRENT = re.compile(r"(?i)\b(current|old|existing|present)\b")
ANSWER_PAUSE = 0.2  # s between a password question and its answer


def _new_password(rng, min_length: int | None) -> str:
    """A fresh password with upper, lower and digits, long enough for the documented policy."""
    length = max(16, (min_length or 0) + 2)
    alphabet = string.ascii_letters + string.digits
    body = [rng.choice(string.ascii_uppercase), rng.choice(string.ascii_lowercase), rng.choice(string.digits)]
    body += [rng.choice(alphabet) for _ in range(length - 3)]
    rng.shuffle(body)
    return "".join(body)


def _change_on_console(bench, command: str, current: str, new: str, timeout: float = 30.0) -> dict:
    """Run the documented change command in the console shell, answering its password questions.

    A question naming the current/old password gets `current`; every other password question
    gets `new` (the new password and its confirmation). Bounded: 6 questions, `timeout` s.
    """
    con = bench.console
    shell = bench.prompts.shell_prompt
    con.read_until_quiet(quiet=0.3, timeout=3.0)
    con.sendline(command)
    asked: list[str] = []
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or len(asked) > 6:
            raise DutError(f"`{command}` did not come back to the shell prompt within {timeout:.0f} s "
                           f"after {len(asked)} password question(s); last output: {text[-200:]!r}")
        try:
            found = con.expect([PASSWORD_QUESTION, shell], timeout=remaining)
        except ExpectTimeout as exc:
            raise DutError(f"`{command}` neither asked for a password nor returned to the shell: {exc}") from None
        text += found.before + found.match.group(0)
        if found.index == 1:
            break
        seen = found.before + found.match.group(0)
        question = seen.splitlines()[-1] if seen.strip() else ""
        time.sleep(ANSWER_PAUSE)  # as a person would: some programs flush input sent before they turn echo off
        if ASKS_CURRENT.search(question):
            asked.append("current")
            con.sendline(current, secret=True)
        else:
            asked.append("new")
            con.sendline(new, secret=True)
    for secret in (current, new):
        text = text.replace(secret, "********")
    return {"command": command, "questions_answered": asked, "output": text.strip()[-1000:]}


def _logins(bench, user: str, **passwords: str) -> dict[str, str]:
    return {name: bench.ssh.try_login(user, pw).outcome for name, pw in passwords.items()}


@pytest.mark.etsi("5.1-4-2")
def test_5_1_4_2_password_change_works(dut, bench, ixit, rng, evidence):
    """The documented way to change the password works: old rejected, new accepted (5.1-4).

    Runs IXIT 1-AuthMech `change.command` in the console shell (answering its password
    questions), checks both passwords over SSH, then changes the password back the same way.
    Side effects: the password is changed and restored; if the DUT refuses the old password as
    a new one, it is restored with the documented factory reset (25-DelFunc) when that restores
    the label password. Two or three wrong SSH logins (under the documented lockout).
    """
    mechs = [m for m in ixit.auth_mech if m.factor in ("password", "pin") and m.change and m.change.command]
    if not mechs:
        raise CertlabError("ixit: 1-AuthMech: no mechanism documents a change command (change.command); "
                           "5.1-4-2 cannot be automated")
    mech = _one_ssh_mech(ixit, bench, "5.1-4-2") if len(mechs) > 1 else mechs[0]
    user = _account(mech, bench)
    if user != bench.config.ssh.user:
        raise CertlabError(f"ixit: 1-AuthMech {mech.id}: account {user!r} is not the one the lab logs in as "
                           f"({bench.config.ssh.user!r}); change its password by hand")
    old = _lab_password(bench)
    new = _new_password(rng, mech.change.min_length)
    if bench.console.transcript is not None:
        bench.console.transcript.add_secret(new)
    report: dict = {"mechanism": mech.id, "command": mech.change.command, "user": user}
    LoginBudget(bench, user, old, mech.brute_force_prevention).ready()
    bench.ssh.close()  # the lab's own session must not hide what the password now is
    with allure.step(f"change the password with `{mech.change.command}` on the console"):
        report["change"] = _change_on_console(bench, mech.change.command, old, new)
    with allure.step("over SSH: the old password must be rejected, the new one accepted"):
        after = _logins(bench, user, old=old, new=new)
        report["after_change"] = after
    try:
        with allure.step("change the password back and confirm"):
            report["restore"] = _restore(bench, ixit, mech, user, old, new, after, report)
    finally:
        evidence.json("password-change", report)
    problems = []
    if after["old"] != "rejected":
        problems.append(f"the old password still gets '{after['old']}' over SSH after `{mech.change.command}`")
    if after["new"] != "accepted":
        problems.append(f"the new password gets '{after['new']}' over SSH after `{mech.change.command}`")
    assert not problems, (f"the documented password change ({mech.change.command}) did not take effect: "
                          + "; ".join(problems) + f" (it printed: {report['change']['output'][-150:]!r})")


def _restore(bench, ixit: Ixit, mech: AuthMech, user: str, old: str, new: str, after: dict[str, str], report: dict) -> dict:
    """Put the old password back; the DUT must accept it again before the next test."""
    done: dict = {}
    if after["old"] == "accepted":
        done["needed"] = False  # the change never took: nothing to undo
        return done
    if after["new"] == "accepted":
        done["change_back"] = _change_on_console(bench, mech.change.command, new, old)
        done["after"] = _logins(bench, user, old=old)
        if done["after"]["old"] == "accepted":
            return done
    done["factory_reset"] = _factory_reset_to_label(bench, ixit, old)
    done["after_reset"] = _logins(bench, user, old=old)
    if done["after_reset"]["old"] != "accepted":
        report["restore"] = done
        raise DutError(f"the DUT could not be given its old password back (change back and documented reset: "
                       f"{done['after_reset']['old']}); the bench needs the password reset by hand")
    return done


def _factory_reset_to_label(bench, ixit: Ixit, old: str) -> dict:
    """Last resort: the documented device reset (25-DelFunc), if the old password is the label password."""
    resets = [d for d in ixit.del_func if d.target_type == "device" and d.command]
    if bench.label_password() != old or not resets:
        raise DutError("the DUT refused the old password as a new one and no documented reset restores it; "
                       "the bench needs the password reset by hand")
    reset = resets[0]
    con = bench.console
    con.read_until_quiet(quiet=0.3, timeout=3.0)
    con.clear()
    con.sendline(reset.command)
    bench.ssh.close()
    bench.strategy.invalidate()  # the next test starts from a known state again
    if reset.reboots:
        con.expect(bench.prompts.boot_banner, timeout=bench.strategy.boot_timeout + 30)
    bench.ssh.wait_reachable(timeout=bench.strategy.boot_timeout + 30)
    return {"command": reset.command, "reboots": reset.reboots}


# --- 5.1-5-2 -------------------------------------------------------------------------------

DELAY_SECONDS = 120.0  # the interleaved timing measurement takes at most this long

MAX_SERIES = 30  # wrong attempts at most, whatever the IXIT says
SERIES_SECONDS = 180.0  # and at most this long


def _wrong_password(rng, right: str) -> str:
    while True:
        guess = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(max(12, len(right))))
        if guess != right:
            return guess


def _measure_delay(bench, user: str, right: str, rng, delay: float):
    """Timed wrong-password attempts, each paired with an unauthenticated ("none") request on the
    same connection, alternating which goes first, until the judgement is decided or
    MAX_DELAY_PAIRS / DELAY_SECONDS are used up. Only the authentication exchanges are timed: the
    key exchange, which on a slow device varies by more than the delay, is not; and one slow
    pair moves one difference only.
    """
    pairs: list[tuple[float, float]] = []
    samples: list[dict] = []
    start = time.monotonic()
    judged = support.judge_failure_delay(pairs, delay)
    for n in range(4 * support.MAX_DELAY_PAIRS):  # bounded in count as in time
        if len(pairs) >= support.MAX_DELAY_PAIRS or time.monotonic() - start >= DELAY_SECONDS:
            break
        t = bench.ssh.time_auth(user, _wrong_password(rng, right), attempt_first=n % 2 == 1)
        samples.append({"pair": n + 1, "order": "attempt, none" if n % 2 else "none, attempt", "outcome": t.outcome,
                        "none_seconds": None if t.baseline is None else round(t.baseline, 4),
                        "attempt_seconds": None if t.attempt is None else round(t.attempt, 4),
                        "detail": t.detail, "at": round(time.monotonic() - start, 3)})
        if t.outcome == "rejected" and t.baseline is not None and t.attempt is not None and not t.detail:
            pairs.append((t.baseline, t.attempt))  # a pair counts only if both were answered as they should be
        if len(pairs) >= support.MIN_DELAY_PAIRS:
            judged = support.judge_failure_delay(pairs, delay)
            if judged.decision != "undecidable":
                break
    judged = support.judge_failure_delay(pairs, delay)
    return judged, {"method": "on each fresh SSH connection, after the key exchange: one 'none' authentication "
                              "request (answered at once, no password checked) and one wrong password, order "
                              "alternating; per pair the password attempt's round trip minus the none request's; "
                              f"decided only when the {support.DELAY_CONFIDENCE:.0%} distribution-free interval of "
                              "the median difference lies wholly above or below the threshold",
                    "documented_delay_seconds": delay, "tolerance": support.DELAY_TOLERANCE,
                    "threshold_seconds": judged.threshold, "pairs": [list(p) for p in pairs],
                    "differences": list(judged.differences), "median_difference": judged.median,
                    "interval": [judged.low, judged.high], "confidence": judged.confidence,
                    "decision": judged.decision, "how": judged.how(), "samples": samples}


@pytest.mark.etsi("5.1-5-2")
def test_5_1_5_2_brute_force_impracticable(dut, bench, ixit, rng, evidence):
    """Guessing over the network is locked out or slowed down as IXIT 1-AuthMech documents (5.1-5).

    A bounded series of wrong SSH passwords (timed), then the right one: with a documented
    lockout (max_attempts, lockout_seconds) the right password must be refused right after
    max_attempts failures; with a documented delay, failed attempts must take that long. Unlimited
    fast answers with the right password still accepted afterwards is a FAIL. Side effects: the
    documented lockout is triggered and waited out (bounded); ends with a successful login.
    """
    mech = _one_ssh_mech(ixit, bench, "5.1-5-2")
    user = _account(mech, bench)
    right = _lab_password(bench)
    bfp = mech.brute_force_prevention
    budget = LoginBudget(bench, user, right, bfp)
    budget.ready()
    documented = bfp.model_dump() if bfp else None
    lockout_after = bfp.max_attempts if bfp and bfp.lockout_seconds is not None else None
    delay = bfp.delay_seconds if bfp else None
    first = lockout_after or 10
    total = min(MAX_SERIES, max(3 * first, 10))
    series: list[dict] = []
    probes: list[dict] = []
    start = time.monotonic()

    def wrong(n: int) -> None:
        for _ in range(n):
            if len(series) >= total or time.monotonic() - start > SERIES_SECONDS:
                return
            a = bench.ssh.try_login(user, _wrong_password(rng, right))
            series.append({"n": len(series) + 1, "outcome": a.outcome, "seconds": round(a.seconds, 3),
                           "at": round(time.monotonic() - start, 3), "detail": a.detail})

    def probe(why: str) -> str:
        a = bench.ssh.try_login(user, right)
        probes.append({"after_wrong": len(series), "why": why, "outcome": a.outcome,
                       "seconds": round(a.seconds, 3), "at": round(time.monotonic() - start, 3)})
        return a.outcome

    with allure.step(f"{first} wrong passwords for {user!r} over SSH, then the right one"):
        wrong(first)
        outcome = probe("right password after the documented number of failures" if lockout_after
                        else "right password after the series")
    if outcome == "accepted":
        with allure.step(f"no lockout yet: keep guessing, up to {total} wrong passwords, then the right one"):
            wrong(total - len(series))
            outcome = probe("right password after the whole series")
    wall = time.monotonic() - start
    failed_times = sorted(r["seconds"] for r in series if r["outcome"] == "rejected")
    median = failed_times[len(failed_times) // 2] if failed_times else None
    # An accepted login costs the same connection and key exchange: what a failure takes beyond
    # that is the DUT's delay.
    accepted = sorted(c["seconds"] for c in [*budget.checks, *probes] if c["outcome"] == "accepted")
    baseline = accepted[len(accepted) // 2] if accepted else 0.0
    extra = None if median is None else round(median - baseline, 3)
    blocked = [r for r in series if r["outcome"] != "rejected"]
    locked = outcome != "accepted"
    unlock: dict = {}
    if locked:
        t0 = time.monotonic()
        if bfp and bfp.lockout_seconds and bfp.lockout_seconds >= 2:
            with allure.step(f"halfway through the documented lockout ({bfp.lockout_seconds:g} s): still locked?"):
                time.sleep(bfp.lockout_seconds / 2)
                unlock["halfway"] = probe("right password halfway through the documented lockout")
        with allure.step("wait the lockout out; the right password must work again"):
            budget.wait_out("the brute-force series", waited=time.monotonic() - t0)
            unlock["seconds_until_accepted"] = round(time.monotonic() - t0, 3)
    timing: dict | None = None
    judged = None
    if delay is not None and not locked:
        with allure.step(f"delay per failed login: up to {support.MAX_DELAY_PAIRS} timed wrong passwords, each "
                         "against a 'none' request on its connection"):
            judged, timing = _measure_delay(bench, user, right, rng, delay)
    report = {"mechanism": mech.id, "documented": documented, "attempts": len(series), "wall_seconds": round(wall, 3),
              "median_failed_attempt_seconds": median, "median_accepted_login_seconds": baseline,
              "failure_delay_seconds_from_series": extra, "attempts_not_answered_as_rejected": len(blocked),
              "locked_out": locked, "series": series, "right_password_probes": probes,
              "unlock": unlock, "lockout_waits": budget.checks, "delay_measurement": timing}
    evidence.json("brute-force", report)
    rate = (f"{len(series)} wrong passwords in {wall:.1f} s (median {median if median is not None else '?'} s each, "
            f"{extra if extra is not None else '?'} s more than an accepted login)")
    if lockout_after is not None:
        early = probes[0]["outcome"] != "accepted"
        assert unlock.get("halfway", "rejected") != "accepted", (
            f"the lockout ends early: the right password was accepted {bfp.lockout_seconds / 2:g} s into a lockout the "
            f"IXIT ({mech.id}) documents as {bfp.lockout_seconds:g} s")
        assert early, (f"no brute-force lockout as documented (IXIT {mech.id}: {lockout_after} failures lock out for "
                       f"{bfp.lockout_seconds:g} s): {rate}, the right password was still accepted right after "
                       f"{probes[0]['after_wrong']} failures"
                       + ("" if locked else f" and after all {len(series)}"))
    elif delay is not None and not locked:
        if judged.decision == "undecidable":
            raise support.MeasurementUndecidable(
                f"the lab's timing cannot decide whether failed logins are slowed by the documented {delay:g} s "
                f"(IXIT {mech.id}): {judged.how()}; the interval straddles the threshold (measurement noise on the "
                f"lab host); every sample is in the evidence")
        assert judged.decision == "slowed", (
            f"failed logins are not slowed down as documented (IXIT {mech.id}: {delay:g} s per attempt, tolerance "
            f"{support.DELAY_TOLERANCE:.0%}): {judged.how()}; {len(series)} wrong passwords in {wall:.1f} s, "
            f"right password accepted right after")
    else:
        assert locked or blocked, (f"the IXIT documents no brute-force prevention for {mech.id} and the DUT shows "
                                   f"none: {rate}, and the right password was accepted right after")


# --- 5.1-3-2: authentication crypto as documented --------------------------------------------


def _auth_interfaces(ixit: Ixit) -> tuple[list[tuple[AuthMech, Intf]], list[tuple[AuthMech, Intf]]]:
    """(mechanism, network interface) pairs: SSH ones the lab probes, and the others."""
    ssh, other = [], []
    for mech in ixit.auth_mech:
        for intf in (ixit.interface(i) for i in mech.interfaces):
            if intf.kind == "network":
                (ssh if "ssh" in intf.protocol.lower() else other).append((mech, intf))
    return ssh, other


def _documented_ssh(mech: AuthMech) -> dict[str, tuple[str, ...]]:
    if mech.ssh_algorithms is None:
        raise CertlabError(f"ixit: 1-AuthMech entry {mech.id!r}: field ssh_algorithms is not set; the lab needs the "
                           "SSH algorithm names the mechanism's SSH interface offers (kex, host_key, ciphers, macs) to "
                           "compare with what the device offers (add them; cryptographic_details is free text)")
    return mech.ssh_algorithms.model_dump()


@pytest.mark.etsi("5.1-3-2")
def test_5_1_3_2_authentication_crypto_as_documented(dut, bench, ixit, evidence):
    """Every SSH interface of a network authentication mechanism offers only its documented algorithms and refuses weak ones."""
    ssh_pairs, other = _auth_interfaces(ixit)
    address, timeout = bench.config.network.address, bench.config.ssh.timeout
    problems: list[str] = []
    record: dict = {"interfaces": [], "timeout_s": timeout, "timeout_from": "ssh.timeout of the bench (inventory)"}
    by_hand = []
    for mech, intf in other:
        kind = clear_login_kind(intf.protocol)
        if kind is None:
            by_hand.append(f"{mech.id} on {intf.id} ({intf.protocol})")
            continue
        with allure.step(f"{mech.id} on {intf.id}: {intf.protocol} on {intf.transport}/{intf.port} (no cryptography)"):
            banner = grab_banner(address, intf.port)
        record["interfaces"].append({"mechanism": mech.id, "interface": intf.id, "protocol": intf.protocol,
                                     "banner": banner})
        if banner.startswith("(no banner"):
            raise NetworkFault(f"{intf.id} on {intf.transport}/{intf.port} did not answer the lab ({banner}); "
                               "the IXIT documents it enabled", bench=bench.name)
        problems.append(f"{mech.id} authenticates on {intf.id} ({intf.protocol}, {intf.transport}/{intf.port}, "
                        f"answering {banner[:60]!r}) with no cryptography: the {mech.factor} crosses the network in clear")
    if by_hand:
        raise CertlabError(f"ixit: 1-AuthMech: {'; '.join(by_hand)}: the lab automates SSH (and flags clear-text "
                           "logins); assess the cryptography of these interfaces by hand")
    if not ssh_pairs and not problems:
        raise CertlabError("ixit: 1-AuthMech: no authentication mechanism on a network interface (15-Intf kind "
                           "network); 5.1-3-2 has nothing the lab can probe: assess by hand")
    if ssh_pairs:
        bench.ssh.run("true", timeout=timeout)  # SSH ready after the boot (the strategy's wait)
    for mech, intf in ssh_pairs:
        documented = _documented_ssh(mech)
        port = intf.port or bench.config.ssh.port
        where = f"{intf.id} (tcp/{port}) of {mech.id}"
        try:
            with allure.step(f"{where}: read the server's KEXINIT"):
                offer = read_server_offer(address, port, timeout)
            probes = []
            for kind in LISTS:
                with allure.step(f"{where}: negotiate with weak {kind} only"):
                    probes.append(probe_weak(address, port, kind, timeout))
        except OSError as exc:
            raise NetworkFault(f"{where}: the SSH server did not answer the lab's probe: {exc}", bench=bench.name) from None
        verdict = judge(where, documented, offer, probes)
        record["interfaces"].append({"mechanism": mech.id, "interface": intf.id, "port": port,
                                     "identification": offer.ident, "documented": documented,
                                     "offered": offer.offers, "probes": [asdict(p) for p in probes],
                                     **verdict.as_dict()})
        problems += verdict.problems
    record["problems"] = problems
    evidence.json("auth-crypto", record)
    if problems:
        raise DutError(f"5.1-3-2: {len(problems)} problem(s) with the authentication crypto: " + " | ".join(problems))
