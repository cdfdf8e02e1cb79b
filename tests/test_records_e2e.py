"""After the certificate, end to end: a TH-100 certified on a private simulated bench, then the
manufacturer registers an advisory and two releases through the API of a running `certlab serve
--queue-worker`, and nobody starts anything else.

Release 1.4.1 fixes the advisory; release 1.5.0 is built by the simulated manufacturer with its
debug service switched back on (firmware-borne, `certlab sim release --enable open_debug_service`).
Each is re-tested on its own (the queue worker installs it through the IXIT's update mechanism and
runs the certifying run's test cases), the record gains the verdict delta, 1.5.0 is flagged
(audit log and the lab's webhook, HMAC-signed), the open-advisory count goes 1 -> 0, the public JSON
verifies with `certlab verify-record URL`, and a hand-edited copy names the revision it breaks.
The certifying run is narrowed to provision 5.6-1 (`--provision`) so the test takes minutes, and
the re-tests repeat exactly that (they take the certifying run's options).
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from webapp_browser import ROOT, Served, certlab, lab_up, private_inventory, served_app

RETEST_S = 420.0  # one re-test: queue pick-up, install, reboot, 5.6-1, report, approval
SECRET = "webhook-secret-for-the-test"
SIGNATORY = ("Alex Example", "Technical Manager")  # inventory/lab-profile.yaml


class _Hooks(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    class Hooks(_Hooks):
        received: list[tuple[dict[str, str], bytes]] = []

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/certlab", Hooks.received
    finally:
        server.shutdown()
        server.server_close()


def _record(app: Served) -> dict:
    return httpx.get(app.url("/records/TH-100"), timeout=10).raise_for_status().json()


def _wait_retest(app: Served, version: str) -> dict:
    """The release's entry once its re-test has ended, bounded by RETEST_S."""
    deadline = time.monotonic() + RETEST_S
    while time.monotonic() < deadline:
        release = next(r for r in _record(app)["record"]["releases"] if r["version"] == version)
        if (release.get("retest") or {}).get("state") in ("done", "failed"):
            return release
        time.sleep(2)
    worker_log = (app.folder / "data" / "queue-worker.log")
    pytest.fail(f"the re-test of {version} did not end within {RETEST_S:g} s; record: "
                f"{json.dumps(_record(app)['record']['releases'])[-1500:]}\nserver: {app.log_tail()}\nqueue worker: "
                f"{worker_log.read_text(errors='replace')[-2500:] if worker_log.exists() else '(none)'}", pytrace=False)


def _upload(app: Served, token: str, path: str, files: dict[str, Path], data: dict[str, str] | None = None) -> httpx.Response:
    opened = {name: (p.name, p.read_bytes()) for name, p in files.items()}
    return httpx.post(app.url(path), headers={"Authorization": f"Bearer {token}"}, files=opened, data=data or {},
                      timeout=60)


def test_two_releases_are_retested_unprompted_and_the_record_shows_delta_advisories_and_the_flag(tmp_path, webhook):
    hook_url, received = webhook
    inventory = private_inventory(tmp_path / "lab", "trec", scpi_port=17950, subnet=243, ssh_base_port=17960)
    users = [("maker", "manufacturer", "Acme Devices"), ("rival", "manufacturer", "Rival Devices"),
             ("lab", "engineer", "Test Lab")]
    extra = {"CERTLAB_RECORD_WEBHOOK_URL": hook_url, "CERTLAB_RECORD_WEBHOOK_SECRET": SECRET}
    with served_app(tmp_path / "server", inventory, users, extra_env=extra, serve_args=("--queue-worker",)) as app, \
            lab_up(app.env, inventory, app.folder / "lab.log"):
        maker, rival = app.users["maker"].token, app.users["rival"].token
        # certification: the conforming sample, one provision, report approved, record opened
        certlab(app.env, "run", "-i", str(inventory), "--provision", "5.6-1", "--out", str(app.reports), timeout=400)
        run_dir = max((p for p in app.reports.iterdir() if (p / "run.json").is_file()), key=lambda p: p.stat().st_mtime)
        certlab(app.env, "report", "make", str(run_dir), "--no-allure", timeout=300)
        certlab(app.env, "report", "approve", str(run_dir), "--by", SIGNATORY[0], "--role", SIGNATORY[1], timeout=300)
        certlab(app.env, "record", "open", str(run_dir), "--manufacturer", "Acme Devices", timeout=120)
        view = _record(app)
        assert view["record"]["baseline"]["provisions"]["5.6-1"] == "PASS"
        assert view["figures"]["open_advisories"] == 0

        # the simulated manufacturer's releases and advisory
        rel = tmp_path / "releases"
        certlab(app.env, "sim", "release", "TH-100", "1.4.1", "--out", str(rel))
        certlab(app.env, "sim", "release", "TH-100", "1.5.0", "--enable", "open_debug_service", "--out", str(rel))
        advisory = rel / "acme-2026-001.json"
        certlab(app.env, "sim", "advisory", "TH-100", "--id", "ACME-2026-001", "--title", "Weak session tokens",
                "--cve", "CVE-2026-0001", "--affected", "1.4.0", "--fixed", "1.4.1", "--out", str(advisory))

        # only the product's manufacturer registers; another manufacturer's call finds no such record
        assert _upload(app, rival, "/api/v1/records/TH-100/advisories", {"csaf": advisory}).status_code == 404
        assert _upload(app, maker, "/api/v1/records/TH-100/advisories", {"csaf": advisory}).status_code == 201
        assert _record(app)["figures"]["open_advisories"] == 1  # the certified 1.4.0 carries it

        # 1.4.1 fixes the advisory: re-tested unprompted, nothing changes, the advisory is closed
        resp = _upload(app, maker, "/api/v1/records/TH-100/releases",
                       {"image": rel / "TH-100-1.4.1.clfw", "sbom": rel / "TH-100-1.4.1.cdx.json"})
        assert resp.status_code == 201, resp.text
        first = _wait_retest(app, "1.4.1")
        assert first["signature"] == "valid"
        assert first["retest"]["state"] == "done", first["retest"]
        assert first["retest"]["delta"]["newly_failing"] == [] and not first["retest"]["flagged"]
        assert "5.6-1" in first["retest"]["delta"]["unchanged"]
        assert _record(app)["figures"]["open_advisories"] == 0

        # 1.5.0 re-enables the debug service: 5.6-1 turns from PASS to FAIL, flagged and notified
        resp = _upload(app, maker, "/api/v1/records/TH-100/releases",
                       {"image": rel / "TH-100-1.5.0.clfw", "sbom": rel / "TH-100-1.5.0.cdx.json"})
        assert resp.status_code == 201, resp.text
        second = _wait_retest(app, "1.5.0")
        assert second["retest"]["state"] == "done", second["retest"]
        assert second["retest"]["delta"]["newly_failing"] == ["5.6-1"] and second["retest"]["flagged"]
        assert second["retest"]["report_url"]
        figures = _record(app)["figures"]
        assert figures["last_retest"]["version"] == "1.5.0" and figures["last_retest"]["flagged"]

        flagged = [json.loads(body) for headers, body in received
                   if json.loads(body).get("event") == "record.flagged"]
        assert flagged and flagged[-1]["version"] == "1.5.0" and flagged[-1]["newly_failing"] == ["5.6-1"]
        headers, body = next((h, b) for h, b in received if json.loads(b).get("version") == "1.5.0")
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-certlab-signature"], expected)

        # published and tamper-evident
        chain_url = app.url("/records/TH-100/revisions")
        verified = subprocess.run([str(ROOT / ".venv" / "bin" / "certlab"), "verify-record", chain_url], env=app.env,
                                  capture_output=True, text=True, timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        chain = httpx.get(chain_url, timeout=10).json()
        kinds = [r["kind"] for r in chain["revisions"]]
        assert kinds[0] == "opened" and kinds.count("retest") >= 2 and "advisory" in kinds
        edited = next(r for r in chain["revisions"] if r["kind"] == "retest")
        edited["record"]["releases"][-1]["retest"]["verdict"] = "PASS"  # someone "fixes" a verdict by hand
        copy = tmp_path / "edited.json"
        copy.write_text(json.dumps(chain))
        broken = subprocess.run([str(ROOT / ".venv" / "bin" / "certlab"), "verify-record", str(copy)], env=app.env,
                                capture_output=True, text=True, timeout=60)
        assert broken.returncode == 1
        assert f"revision {edited['seq']}" in broken.stdout + broken.stderr
