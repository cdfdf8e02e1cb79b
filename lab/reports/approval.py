"""The authoriser's approval of a report (ISO/IEC 17025 7.8.2.1 o: who authorised it, in what role).

`approval.json` names the person, their role and the moment, and pins what they approved: the
hashes of the draft's `verdicts.json` and `conformance.json`. `approval.sig` is the Ed25519
signature over it, by the key the approval was given with (the lab's key unless the authoriser
has their own). The run is then re-signed, so the manifest covers the approval too and any later
change to a verdict breaks both.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lab.orchestrator.inputs import sha256_file
from lab.reports.conformance import APPROVAL_FILE, JSON_FILE
from lab.reports.errors import ReportError
from lab.reports.keys import fingerprint
from lab.reports.manifest import canonical_json

FORMAT = "certlab-approval/1"
SIGNATURE_FILE = "approval.sig"


@dataclass(frozen=True)
class ApprovalCheck:
    present: bool
    ok: bool
    by: str | None = None
    role: str | None = None
    at: str | None = None
    problem: str | None = None


def write_approval(run_dir: Path, *, by: str, role: str, report_id: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Record and sign the approval of the draft now in `run_dir`."""
    for name in ("verdicts.json", JSON_FILE):
        if not (run_dir / name).is_file():
            raise ReportError(f"{run_dir}: no {name}; fix: make the report first with `certlab report {run_dir}`")
    doc = {
        "format": FORMAT,
        "report_id": report_id,
        "by": by,
        "role": role,
        "at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "approves": {name: sha256_file(run_dir / name) for name in ("verdicts.json", JSON_FILE)},
        "key_fingerprint": fingerprint(key.public_key()),
    }
    data = canonical_json(doc)
    _write(run_dir / APPROVAL_FILE, data)
    _write(run_dir / SIGNATURE_FILE, base64.b64encode(key.sign(data)) + b"\n")
    return doc


def check_approval(run_dir: Path, public_key: Ed25519PublicKey) -> ApprovalCheck:
    """Is the approval there, signed by `public_key`, and still about these verdicts?"""
    path = run_dir / APPROVAL_FILE
    if not path.exists():
        return ApprovalCheck(present=False, ok=True)
    try:
        data = path.read_bytes()
        doc = json.loads(data)
        signature = base64.b64decode((run_dir / SIGNATURE_FILE).read_bytes().strip(), validate=True)
    except FileNotFoundError:
        return ApprovalCheck(present=True, ok=False, problem=f"{SIGNATURE_FILE} is missing")
    except (OSError, ValueError) as exc:
        return ApprovalCheck(present=True, ok=False, problem=f"unreadable approval ({exc})")
    who = dict(by=doc.get("by"), role=doc.get("role"), at=doc.get("at"))
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return ApprovalCheck(present=True, ok=False, problem="approval.sig does not match approval.json "
                             "for this key", **who)
    approved = doc.get("approves") or {}
    verdicts = run_dir / "verdicts.json"
    if not verdicts.is_file() or approved.get("verdicts.json") != sha256_file(verdicts):
        return ApprovalCheck(present=True, ok=False, problem="verdicts.json changed after the approval", **who)
    return ApprovalCheck(present=True, ok=True, **who)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
