"""Signed manifests of run directories: sign, verify, and every way a run can be tampered with.

Fast and self-contained: a synthetic run directory in tmp_path and a key folder there too
(CERTLAB_KEY_DIR), never the user's keys. The CLI is exercised through its own typer app.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from lab.errors import CertlabError
from lab.reports.cli import app
from lab.reports.keys import (FINGERPRINT_FILE, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, fingerprint, init_keys,
                              load_private_key, load_public_key)
from lab.reports.manifest import (FORMAT, MANIFEST_FILE, SIGNATURE_FILE, build_manifest, canonical_json,
                                  shown, sign_run, verify_run)

pytestmark = pytest.mark.usefixtures("key_dir")  # tests/conftest.py: keys in tmp_path, never the user's

RUN_ID = "20250101-120000-abc123"
FILES = {
    "run.json": json.dumps({"run_id": RUN_ID, "benches": ["bench1", "bench2"]}),
    "verdicts.json": json.dumps({"run_id": RUN_ID, "results": [{"test_case": "5.1-1-1", "verdict": "PASS"}]}),
    "allure-results/0001-result.json": '{"status": "passed"}',
    "allure-report/index.html": "<html>report</html>",
    "conformance.html": "<html>conformance</html>",
    "conformance.json": "{}",
    "evidence/bench1/console.log": "Starting kernel\nlogin: root\n" * 50,
    "evidence/bench1/test_login/ssh.txt": "ssh transcript",
    "evidence/bench2/capture.pcap": bytes(range(256)) * 40,
    "evidence/bench2/empty.txt": "",
    "logs/bench1.log": "worker log",
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    root = tmp_path / "reports" / RUN_ID
    for rel, content in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


@pytest.fixture
def signed(run_dir: Path, key_dir: Path) -> Path:
    init_keys()
    sign_run(run_dir, load_private_key())
    return run_dir


def flip_byte(path: Path, offset: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --- keys ------------------------------------------------------------------------------------


def test_init_keys_permissions_and_fingerprint(key_dir: Path):
    keys = init_keys()
    assert keys.folder == key_dir
    assert stat.S_IMODE(os.stat(key_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(key_dir / PRIVATE_KEY_FILE).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key_dir / PUBLIC_KEY_FILE).st_mode) == 0o644
    assert keys.fingerprint == fingerprint(load_public_key()) == fingerprint(load_private_key().public_key())
    assert len(keys.fingerprint) == 19 and keys.fingerprint.count(":") == 3
    assert keys.fingerprint in (key_dir / FINGERPRINT_FILE).read_text()
    assert not keys.encrypted and not list(key_dir.glob("*.tmp"))


def test_init_refuses_to_overwrite_without_force(key_dir: Path):
    first = init_keys()
    with pytest.raises(CertlabError, match=r"signing_key\.pem: a lab key already exists.*--force"):
        init_keys()
    second = init_keys(force=True)
    assert second.fingerprint != first.fingerprint
    assert stat.S_IMODE(os.stat(key_dir / PRIVATE_KEY_FILE).st_mode) == 0o600


def test_refuses_a_group_readable_private_key(key_dir: Path):
    init_keys()
    os.chmod(key_dir / PRIVATE_KEY_FILE, 0o640)
    with pytest.raises(CertlabError, match=r"readable by others \(mode 0640\); fix: chmod 600"):
        load_private_key()


def test_missing_and_bad_key_files(key_dir: Path, tmp_path: Path):
    with pytest.raises(CertlabError, match="certlab keys init"):
        load_private_key()
    with pytest.raises(CertlabError, match="--pubkey"):
        load_public_key()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    os.chmod(junk, 0o600)
    with pytest.raises(CertlabError, match="not a PEM private key"):
        load_private_key(junk)
    with pytest.raises(CertlabError, match="not a PEM public key"):
        load_public_key(junk)
    init_keys()
    with pytest.raises(CertlabError, match="this is a private key"):
        load_public_key(key_dir / PRIVATE_KEY_FILE)


def test_encrypted_private_key(key_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CERTLAB_KEY_PASSPHRASE", "correct horse")
    keys = init_keys()
    assert keys.encrypted and b"ENCRYPTED" in (key_dir / PRIVATE_KEY_FILE).read_bytes()
    assert fingerprint(load_private_key().public_key()) == keys.fingerprint
    monkeypatch.setenv("CERTLAB_KEY_PASSPHRASE", "wrong")
    with pytest.raises(CertlabError, match="wrong passphrase"):
        load_private_key()
    monkeypatch.delenv("CERTLAB_KEY_PASSPHRASE")
    with pytest.raises(CertlabError, match="encrypted; fix: set CERTLAB_KEY_PASSPHRASE"):
        load_private_key()


# --- manifest --------------------------------------------------------------------------------


def test_manifest_lists_every_file_canonically(run_dir: Path):
    manifest = build_manifest(run_dir)
    assert manifest["format"] == FORMAT and manifest["run_id"] == RUN_ID and manifest["algorithm"] == "sha256"
    assert set(manifest["files"]) == set(FILES)
    pcap = manifest["files"]["evidence/bench2/capture.pcap"]
    assert pcap["size"] == len(FILES["evidence/bench2/capture.pcap"])
    data = canonical_json(manifest)
    assert data == canonical_json(json.loads(data)) and b" " not in data.replace(b"Starting kernel", b"")
    assert build_manifest(run_dir, readahead=0)["files"] == manifest["files"]


def test_sign_then_verify_intact(signed: Path, key_dir: Path):
    sig = base64.b64decode((signed / SIGNATURE_FILE).read_text().strip(), validate=True)
    assert len(sig) == 64
    result = verify_run(signed)
    assert result.intact, result.problems()
    assert result.files_checked == len(FILES) and result.problems() == []
    assert result.key_source == str(key_dir / PUBLIC_KEY_FILE)
    assert result.key_fingerprint == result.signed_fingerprint
    assert verify_run(signed, key_dir / PUBLIC_KEY_FILE).intact  # --pubkey, as a certifier would


@pytest.mark.parametrize("rel", ["evidence/bench1/console.log", "evidence/bench2/capture.pcap", "verdicts.json",
                                 "conformance.html", "allure-report/index.html", "run.json"])
def test_one_flipped_byte_is_named(signed: Path, rel: str):
    flip_byte(signed / rel, offset=7)
    result = verify_run(signed)
    assert not result.intact and result.signature_ok
    assert result.changed == [rel] and not result.missing and not result.added
    assert result.problems() == [f"changed: {rel}"]


def test_same_size_same_mtime_change_is_caught(signed: Path):
    path = signed / "evidence/bench1/console.log"
    st = path.stat()
    flip_byte(path, offset=st.st_size - 1)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert verify_run(signed).changed == ["evidence/bench1/console.log"]


def test_missing_and_added_files(signed: Path):
    (signed / "evidence/bench1/test_login/ssh.txt").unlink()
    (signed / "evidence/bench2/extra.log").write_text("planted")
    result = verify_run(signed)
    assert result.missing == ["evidence/bench1/test_login/ssh.txt"]
    assert result.added == ["evidence/bench2/extra.log"]
    assert result.changed == [] and result.signature_ok and not result.intact


def test_edited_manifest_is_a_bad_signature(signed: Path):
    """The real attack: tamper with a file and fix its hash in the manifest."""
    rel = "verdicts.json"
    (signed / rel).write_text(json.dumps({"run_id": RUN_ID, "results": [{"verdict": "FAIL"}]}))
    doc = json.loads((signed / MANIFEST_FILE).read_bytes())
    doc["files"][rel] = build_manifest(signed)["files"][rel]
    (signed / MANIFEST_FILE).write_bytes(canonical_json(doc))
    result = verify_run(signed)
    assert not result.signature_ok and not result.intact and result.changed == []
    assert result.problems()[0].startswith("bad signature: manifest.json does not match manifest.sig")


def test_wrong_public_key_is_a_bad_signature(signed: Path, tmp_path: Path):
    other = init_keys(tmp_path / "other-lab")
    result = verify_run(signed, other.public_key)
    assert not result.signature_ok and not result.intact
    assert result.key_fingerprint == other.fingerprint
    assert f"verified with key {other.fingerprint}" in result.signature_problem
    assert result.signed_fingerprint in result.signature_problem


def test_missing_or_garbled_signature(signed: Path):
    (signed / SIGNATURE_FILE).write_text(base64.b64encode(b"x" * 64).decode())
    assert "does not match" in verify_run(signed).signature_problem
    (signed / SIGNATURE_FILE).write_text("not base64 !!")
    assert "not a base64 signature" in verify_run(signed).signature_problem
    (signed / SIGNATURE_FILE).unlink()
    result = verify_run(signed)
    assert not result.intact and result.signature_problem == "manifest.sig is missing"


def test_garbled_manifest_is_tampering_not_bad_input(signed: Path):
    (signed / MANIFEST_FILE).write_text("{ not json")
    result = verify_run(signed)
    assert not result.signature_ok and "no file could be compared" in result.signature_problem


def test_unsigned_run_is_bad_input(run_dir: Path):
    init_keys()
    with pytest.raises(CertlabError, match=r"manifest\.json: no manifest; fix: .*certlab sign"):
        verify_run(run_dir)
    with pytest.raises(CertlabError, match="no such run directory"):
        verify_run(run_dir / "nope")


def test_sign_needs_a_finished_run(run_dir: Path):
    (run_dir / "verdicts.json").unlink()
    with pytest.raises(CertlabError, match="no verdicts.json; fix: the run has not finished"):
        sign_run(run_dir, Ed25519PrivateKey.generate())


def test_symlinks_are_refused_and_never_followed(signed: Path, tmp_path: Path):
    rel = "evidence/bench1/console.log"
    outside = tmp_path / "outside.log"
    outside.write_bytes((signed / rel).read_bytes())  # same bytes: following the link would pass
    (signed / rel).unlink()
    (signed / rel).symlink_to(outside)
    (signed / "evidence/elsewhere").symlink_to(tmp_path, target_is_directory=True)
    result = verify_run(signed)
    assert result.changed == [rel] and "symlink" in result.notes[rel]
    assert result.added == ["evidence/elsewhere"] and not result.intact
    with pytest.raises(CertlabError, match="only regular files; fix: replace links with copies"):
        sign_run(signed, load_private_key())


# --- command line ----------------------------------------------------------------------------


def test_cli_keys_sign_verify(run_dir: Path, key_dir: Path, tmp_path: Path):
    runner = CliRunner()
    init = runner.invoke(app, ["keys", "init"])
    assert init.exit_code == 0, init.output
    fpr = fingerprint(load_public_key())
    said = init.output.replace("\n", "")  # rich wraps a long key path at the terminal's width
    assert fpr in said and "public_key.pem" in said
    again = runner.invoke(app, ["keys", "init", "--dir", str(key_dir)])
    assert isinstance(again.exception, CertlabError)

    signed = runner.invoke(app, ["sign", str(run_dir)])
    assert signed.exit_code == 0, signed.output
    assert f"signed {len(FILES)} files" in signed.output

    ok = runner.invoke(app, ["verify", str(run_dir), "--pubkey", str(key_dir / PUBLIC_KEY_FILE)])
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.output and fpr in ok.output

    flip_byte(run_dir / "evidence/bench2/capture.pcap")
    (run_dir / "logs/bench1.log").unlink()
    bad = runner.invoke(app, ["verify", str(run_dir)])
    assert bad.exit_code == 1, bad.output
    assert "changed: evidence/bench2/capture.pcap" in bad.output
    assert "missing: logs/bench1.log" in bad.output and "TAMPERED" in bad.output

    other = init_keys(tmp_path / "other")
    wrong = runner.invoke(app, ["verify", str(run_dir), "--pubkey", str(other.public_key)])
    assert wrong.exit_code == 1 and "bad signature" in wrong.output


def test_cli_bad_input_raises_certlab_error(run_dir: Path, key_dir: Path):
    runner = CliRunner()
    no_key = runner.invoke(app, ["sign", str(run_dir)])
    assert isinstance(no_key.exception, CertlabError) and "certlab keys init" in str(no_key.exception)
    init_keys()
    unsigned = runner.invoke(app, ["verify", str(run_dir)])
    assert isinstance(unsigned.exception, CertlabError) and "no manifest" in str(unsigned.exception)


def test_the_certlab_command_signs_and_verifies(run_dir: Path, key_dir: Path):
    """As a certifier types it: exit 0 intact, 1 naming the file, 2 for bad input."""
    import os
    import subprocess
    import sys

    def certlab(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "200"})

    assert certlab("keys", "init", "--dir", str(key_dir), "--force").returncode == 0
    assert certlab("sign", str(run_dir)).returncode == 0
    assert certlab("verify", str(run_dir)).returncode == 0
    flip_byte(run_dir / "verdicts.json")
    tampered = certlab("verify", str(run_dir))
    assert tampered.returncode == 1 and "verdicts.json" in tampered.stdout + tampered.stderr
    missing = certlab("verify", str(run_dir / "nowhere"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


# --- no name is exempt; names are printed escaped ---------------------------------------------


@pytest.mark.parametrize("rel", ["conformance.pdf.tmp", "evidence/bench1/test_login/y.json.tmp",
                                 "verdicts.json.tmp", ".conformance.pdf.123.tmp"])
def test_a_tmp_file_added_after_signing_fails_verify(signed: Path, rel: str):
    """A forged `*.tmp` beside (or deep below) the signed files is an added file, named, exit 1."""
    (signed / rel).parent.mkdir(parents=True, exist_ok=True)
    (signed / rel).write_bytes(b"%PDF-1.4 forged")
    result = verify_run(signed)
    assert not result.intact and result.added == [rel] and result.problems() == [f"added: {rel}"]
    cli = CliRunner().invoke(app, ["verify", str(signed)])
    assert cli.exit_code == 1, cli.output
    assert f"added: {rel}" in cli.output and "TAMPERED" in cli.output and "intact" not in cli.output


def test_sign_refuses_a_half_written_file_and_clears_its_own_leftovers(run_dir: Path, key_dir: Path):
    init_keys()
    (run_dir / "evidence/bench1/x.json.tmp").write_text('{"half": ')
    with pytest.raises(CertlabError, match=r"evidence/bench1/x\.json\.tmp: half-written .*fix: "):
        sign_run(run_dir, load_private_key())
    assert not (run_dir / MANIFEST_FILE).exists()
    (run_dir / "evidence/bench1/x.json.tmp").unlink()
    (run_dir / (MANIFEST_FILE + ".tmp")).write_text("an interrupted signing")  # sign's own leftover
    manifest = sign_run(run_dir, load_private_key())
    assert set(manifest["files"]) == set(FILES) and not (run_dir / (MANIFEST_FILE + ".tmp")).exists()
    assert verify_run(run_dir).intact


@pytest.mark.parametrize(("name", "printed"), [
    ("evidence/plain-name_1.log", "evidence/plain-name_1.log"),
    ("x\n\x1b[32mintact\x1b[0m", "x\\n\\x1b[32mintact\\x1b[0m"),
    ("a\rb\tc\x00\x7f", "a\\rb\\tc\\x00\\x7f"),
    ("back\\slash", "back\\\\slash"),
    ("bidi\u202etxt.exe", "bidi\\u202etxt.exe"),
    ("c1\u0085", "c1\\u0085"),
    (b"raw\xff\xc3".decode("utf-8", "surrogateescape"), "raw\\xff\\xc3"),
    ("caf\u00e9 \u6f22", "caf\u00e9 \u6f22"),  # printable text stays as it is
])
def test_shown_makes_every_name_one_visible_line(name: str, printed: str):
    assert shown(name) == printed
    assert all(ch.isprintable() for ch in shown(name))


def test_a_name_drawing_a_fake_intact_line_is_printed_escaped(signed: Path):
    os.mkdir(os.path.join(os.fsencode(signed), b"evidence", b"bad\xffdir"))
    names = ["x\n\x1b[32mintact\x1b[0m", b"bad\xffdir/y\r.log".decode("utf-8", "surrogateescape")]
    for name in names:
        with open(os.path.join(os.fsencode(signed), b"evidence", os.fsencode(name)), "wb") as fh:
            fh.write(b"planted")
    cli = CliRunner().invoke(app, ["verify", str(signed)])
    assert cli.exit_code == 1, cli.output
    assert "added: evidence/x\\n\\x1b[32mintact\\x1b[0m" in cli.output
    assert "added: evidence/bad\\xffdir/y\\r.log" in cli.output
    assert "\x1b" not in cli.output and "\r" not in cli.output
    assert not any(line.lstrip().startswith("intact") for line in cli.output.splitlines()), cli.output
