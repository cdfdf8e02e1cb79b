"""Is a run's report what the lab signed and approved? The one check behind `certlab verify DIR`
and the web app's verification state, so a certifier's browser and terminal never disagree.

    check = verify_report(run_dir)          # the lab key folder's public key, or pubkey=FILE
    check.intact, check.state, check.why    # True/"intact"/"" or False/"tampered"/"bad signature: ..."
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.errors import CertlabError
from lab.reports.approval import ApprovalCheck, check_approval
from lab.reports.archive import report_version
from lab.reports.keys import load_public_key
from lab.reports.manifest import MANIFEST_FILE, VerifyResult, verify_run


@dataclass(frozen=True)
class ReportCheck:
    """What `verify_report` found: the signed manifest against every file, then the approval."""

    result: VerifyResult
    approval: ApprovalCheck | None  # None when the signature is bad (an approval then proves nothing)

    @property
    def intact(self) -> bool:
        return self.result.intact and (self.approval is None or self.approval.ok)

    @property
    def approved(self) -> bool:
        """Approved, and the approval's signature and pinned verdicts still hold."""
        return self.approval is not None and self.approval.present and self.approval.ok

    @property
    def signature(self) -> str:
        """"valid" or "invalid: why" (the manifest's signature only)."""
        return "valid" if self.result.signature_ok else f"invalid: {self.result.signature_problem}"

    @property
    def approval_state(self) -> str:
        """"valid" (by whom), "missing" (a draft), "invalid: why", or "unchecked" (bad signature)."""
        if self.approval is None:
            return "unchecked (the signature is bad)"
        if not self.approval.present:
            return "missing (a draft, not approved)"
        if not self.approval.ok:
            return f"invalid: {self.approval.problem}"
        return f"valid: {self.approval.by} ({self.approval.role}) at {self.approval.at}"

    @property
    def problems(self) -> list[str]:
        """One line per problem, the approval's first (as `certlab verify` prints them)."""
        bad = [f"bad approval: {self.approval.problem}"] if self.approval is not None and not self.approval.ok else []
        return bad + self.result.problems()


def verify_report(run_dir: Path, pubkey: Path | None = None) -> ReportCheck:
    """Check the run's manifest signature and every file's hash, then (if the signature is good)
    its approval, with `pubkey` (default: the lab key folder's public key). CertlabError when the
    key or the manifest cannot be read at all."""
    result = verify_run(run_dir, pubkey)
    approval = check_approval(run_dir, load_public_key(pubkey)) if result.signature_ok else None
    return ReportCheck(result=result, approval=approval)


# --- for pages: a verification state, and recent ones remembered per report version --------------


@dataclass(frozen=True)
class Verification:
    """A report's verification state as a page shows it: signature and approval, each valid or why not."""

    state: str  # "intact" | "tampered" | "unverifiable"
    signature: str
    approval: str
    problems: list[str]
    checked_at: float

    @property
    def ok(self) -> bool:
        return self.state == "intact"


def verification(run_dir: Path, pubkey: Path | None = None) -> Verification:
    """`verify_report` as a state; a run that cannot be checked at all (no manifest, no key) is
    "unverifiable" with the reason, never an error page."""
    now = time.time()
    try:
        check = verify_report(run_dir, pubkey)
    except CertlabError as exc:
        return Verification("unverifiable", f"not checked: {exc}", "not checked", [str(exc)], now)
    return Verification("intact" if check.intact else "tampered", check.signature, check.approval_state,
                        check.problems[:20], now)


@dataclass
class Verifications:
    """Recent verification results, held by the app (`Services.verifications`), so a list of
    released reports does not hash every run on every view; a report's own page checks afresh.

    Keyed by the signed manifest's version (lab/reports/archive.report_version: approving or
    re-signing makes a new one) and trusted for `ttl` seconds only: a file changed behind an
    unchanged manifest shows within that time on a list, and at once on the report's page."""

    ttl: float = 300.0
    size: int = 1000
    _seen: dict[str, tuple[str, Verification]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, run_dir: Path, *, fresh: bool = False) -> Verification:
        version = report_version(run_dir) if (run_dir / MANIFEST_FILE).is_file() else ""
        key = str(run_dir)
        with self._lock:
            seen = self._seen.get(key)
        if not fresh and seen is not None and seen[0] == version and time.time() - seen[1].checked_at < self.ttl:
            return seen[1]
        result = verification(run_dir)
        with self._lock:
            if len(self._seen) >= self.size:
                self._seen.clear()  # rare: more reports than remembered; each is checked again
            self._seen[key] = (version, result)
        return result

    def cached(self, run_dir: Path) -> Verification | None:
        """A recent result for the run's current report version, without checking anything now."""
        with self._lock:
            seen = self._seen.get(str(run_dir))
        if seen is None or time.time() - seen[1].checked_at >= self.ttl:
            return None
        version = report_version(run_dir) if (run_dir / MANIFEST_FILE).is_file() else ""
        return seen[1] if seen[0] == version else None
