"""Bad input files never end in a 500, exit 70 or a hang (issue 15, items 8 and 9).

Input files are read only when regular and size-bounded (lab/inputfile.py); YAML values PyYAML
cannot build, deep nesting and alias bombs are one line with the field or line (lab/yamlfile.py).
Each through the library, the real command line (`lab.cli.main`, or a capped subprocess where
the old code hung or read without end) and the API's uploads.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from apilib import acme, app, bearer, certlab_main, client, product  # noqa: F401 - tests/apilib.py; fixtures by name
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lab.assessments import AssessmentsError, load_assessments
from lab.errors import CertlabError
from lab.ics import IcsError, load_ics
from lab.inputfile import MAX_YAML_BYTES, read_bounded, read_bounded_text
from lab.inventory import InventoryError, load_inventory
from lab.ixit import IxitError, load_ixit
from lab.reports.profile import ProfileError, load_profile
from lab.reports.synthetic import make_run
from lab.secrets import SecretRef
from lab.store import bookings as bk
from lab.store.accounts import users
from lab.yamlfile import MAX_DEPTH, parse_yaml

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_DIR = ROOT / "inventory" / "products" / "TH-100"
ICS = (PRODUCT_DIR / "ics.yaml").read_text(encoding="utf-8")
IXIT = (PRODUCT_DIR / "ixit.yaml").read_text(encoding="utf-8")
ASSESSMENTS = (PRODUCT_DIR / "assessments.yaml").read_text(encoding="utf-8")
API = "/api/v1"
CHILD_MEMORY = 2 << 30  # address space of a capped child (bytes)
DIGITS = 5000  # over Python's default limit of 4300 digits for int <-> str


def nested(levels: int) -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(levels)) + "  " * levels + "1\n"


#: name -> (a YAML value line under `bad:` or a whole document, what the one line must say)
BAD_DOCS: dict[str, tuple[str, str]] = {
    "impossible-date": ("bad: 2024-02-30\n", "field bad (line 1): '2024-02-30' is not a real date"),
    "year-zero": ("bad: 0000-01-01\n", "'0000-01-01' is not a real date"),
    "int-over-digit-limit": (f"bad: {'9' * DIGITS}\n", "field bad (line 1)"),
    "nested-250": (nested(250), f"nesting deeper than {MAX_DEPTH} levels"),
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text and "internal error" not in text, text
    return lines[0]


# --- item 8: only regular files, size-bounded -----------------------------------------------

def special_file(kind: str, tmp_path: Path) -> Path:
    if kind == "dev-zero":
        return Path("/dev/zero")
    if kind == "fifo":
        os.mkfifo(tmp_path / "inventory.fifo")
        return tmp_path / "inventory.fifo"
    if kind == "directory":
        return tmp_path
    with open(tmp_path / "big.yaml", "wb") as fh:  # sparse: nothing is written but the size
        fh.truncate(MAX_YAML_BYTES + 1)
    return tmp_path / "big.yaml"


SPECIAL = {"dev-zero": "is a character device, not a regular file", "fifo": "is a fifo (named pipe), not a regular file",
           "directory": "is a directory, not a regular file", "oversized": "over the 8 MiB certlab reads for the inventory"}


def bounded(call: Callable[[], object]) -> BaseException | None:
    """Run `call` in a thread that may not block for good: the old code hung on a fifo or /dev/zero."""
    box: list[BaseException | None] = [None]

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box[0] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the read blocked"
    return box[0]


def capped(*args: str) -> subprocess.CompletedProcess:
    """Python in a child bounded in time and memory: reading /dev/zero without a bound (the old
    code) must end in a failed test, not in the machine running out of memory."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))

    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, preexec_fn=limit)


@pytest.mark.parametrize("kind", SPECIAL)
def test_loader_refuses_what_is_not_a_regular_file_of_sane_size(kind: str, tmp_path: Path) -> None:
    path = special_file(kind, tmp_path)
    if kind == "dev-zero":  # in a capped child, see capped()
        proc = capped("-c", "import sys; from lab.inventory import load_inventory as load\n"
                            "try: load(sys.argv[1])\nexcept Exception as exc: print(type(exc).__name__, exc)", str(path))
        exc_text = proc.stdout.strip().removeprefix("InventoryError ")
        assert proc.stdout.startswith("InventoryError "), proc.stdout + proc.stderr
    else:
        exc = bounded(lambda: load_inventory(path))
        assert isinstance(exc, InventoryError), exc
        exc_text = str(exc)
    assert exc_text.startswith(f"{path}: ") and SPECIAL[kind] in exc_text and "\n" not in exc_text


@pytest.mark.parametrize("kind", SPECIAL)
def test_inventory_check_refuses_it_with_exit_2(kind: str, tmp_path: Path) -> None:
    path = special_file(kind, tmp_path)
    proc = capped("-m", "lab.cli", "inventory", "check", "-i", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith(f"certlab: error: {path}: ") and SPECIAL[kind] in line


def test_the_bound_holds_while_reading_a_file_whose_size_says_nothing() -> None:
    """/proc files are regular with st_size 0: the bound is counted on the bytes read too."""
    with pytest.raises(CertlabError, match=r"over the 16 bytes certlab reads for the maps"):
        read_bounded(Path("/proc/self/maps"), what="maps", limit=16)
    assert read_bounded(Path("/proc/self/maps"), what="maps", limit=1 << 20)


def test_text_that_is_not_utf8_and_a_missing_file_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"name: Caf\xe9\n")
    with pytest.raises(CertlabError, match=r"latin1.yaml: the ICS is not UTF-8 text \(byte 9\); save it as UTF-8"):
        read_bounded_text(tmp_path / "latin1.yaml", what="ICS", limit=100)
    with pytest.raises(CertlabError, match=r"nope.yaml: file not found; pass an existing ICS file"):
        read_bounded_text(tmp_path / "nope.yaml", what="ICS", limit=100)


def test_a_secret_file_is_read_the_same_way(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pw")
    exc = bounded(lambda: SecretRef(file="pw").resolve(tmp_path, field="ssh.password"))
    assert isinstance(exc, CertlabError) and str(exc).startswith("ssh.password: ") and "fifo" in str(exc), exc
    (tmp_path / "ok").write_text("s3cret\n")
    assert SecretRef(file="ok").resolve(tmp_path) == "s3cret"


# --- item 9: values PyYAML cannot build, nesting, alias bombs --------------------------------

@pytest.mark.parametrize("name", BAD_DOCS)
def test_parse_yaml_names_the_field_or_line(name: str) -> None:
    text, said = BAD_DOCS[name]
    with pytest.raises(CertlabError) as caught:
        parse_yaml(text, "f.yaml", CertlabError)
    line = str(caught.value)
    assert line.startswith("f.yaml: ") and "line " in line and said in line and "\n" not in line, line


@pytest.mark.parametrize(("text", "said"), [
    ("a: 0x" + "f" * DIGITS + "\n", "field a (line 1)"),  # built by PyYAML, but could never be printed
    ("a:\n  t: .nan\n", "field a.t (line 2): '.nan' is not a usable number (not a finite number)"),
    ("a: [1, -.inf]\n", "field a[1] (line 1)"),
    ("d: 2024-01-01 25:00:00\n", "'2024-01-01 25:00:00' is not a real date or time (hour must be in 0..23)"),
    ("[" * 70 + "]" * 70, "nesting deeper than"),
    ("x: &x " + "[" * 40 + "]" * 40 + "\ny: " + "[" * 30 + "*x" + "]" * 30 + "\n", "nesting deeper than"),
    ("a: &a [*a]\n", "an alias inside its own anchor"),
    ("? [1]\n: 2\n", "line 1: a key that is a list or mapping; write a plain key"),
    ("a: {{b: 1}: 2}\n", "line 1: a key that is a list or mapping"),
    ("a: !!int abc\n", "'abc' is not a whole number certlab can read"),
    ("a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(7)),
     "aliases expand to more than"),
])
def test_parse_yaml_refuses_more_unbuildable_documents(text: str, said: str) -> None:
    with pytest.raises(CertlabError, match=None) as caught:
        parse_yaml(text, "f.yaml", CertlabError)
    assert said in str(caught.value), caught.value


def test_what_real_files_use_still_parses() -> None:
    doc = parse_yaml("x: &x {a: 0x10, d: 2024-02-29}\ny:\n  <<: *x\n  b: [1.5, 1e3]\n" + nested(20), "f", CertlabError)
    assert doc["y"] == {"a": 16, "d": doc["x"]["d"], "b": [1.5, "1e3"]} and str(doc["x"]["d"]) == "2024-02-29"


LOADERS: dict[str, tuple[Callable[[Path], object], type[CertlabError]]] = {
    "inventory": (load_inventory, InventoryError),
    "ics": (lambda p: load_ics(p, "v2"), IcsError),
    "ixit": (load_ixit, IxitError),
    "assessments": (lambda p: load_assessments(p, "v2"), AssessmentsError),
    "lab profile": (load_profile, ProfileError),
}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("name", BAD_DOCS)
def test_every_loader_answers_its_own_error(loader: str, name: str, tmp_path: Path) -> None:
    load, error = LOADERS[loader]
    path = write(tmp_path, "doc.yaml", BAD_DOCS[name][0])
    with pytest.raises(error) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: ") and BAD_DOCS[name][1] in str(caught.value)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("reports"), results=4, samples=1)


def commands(path: Path, run: Path) -> dict[str, list[str]]:
    return {
        "inventory check": ["inventory", "check", "-i", str(path)],
        "bench list": ["bench", "list", "-i", str(path)],
        "queue add": ["queue", "add", "--model", "TH-100", "--ics", str(path), "--ixit", str(PRODUCT_DIR / "ixit.yaml")],
        "report --lab-profile": ["report", str(run), "--lab-profile", str(path), "--no-allure", "--no-pdf", "--no-sign"],
        "serve -i": ["serve", "-i", str(path), "--port", "1"],  # never serves: the inventory stops it first
    }


@pytest.mark.parametrize("command", ["inventory check", "bench list", "queue add", "report --lab-profile", "serve -i"])
@pytest.mark.parametrize("name", BAD_DOCS)
def test_the_command_line_exits_2_with_one_line(command: str, name: str, tmp_path: Path, run_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "doc.yaml", BAD_DOCS[name][0])
    if command == "serve -i":
        monkeypatch.setattr("lab.api.listen.check_listen", lambda host, port: None)  # port 1 needs no bind here
    code, err = certlab_main(monkeypatch, capsys, *commands(path, run_dir)[command])
    assert code == 2, err
    line = one_line(err)
    assert line.startswith(f"certlab: error: {path}: ") and BAD_DOCS[name][1] in line, line


# --- the API: ICS, IXIT and assessments uploads ----------------------------------------------



def booking_body(product_id: int, **changes: object) -> dict:
    return {"product_id": product_id, "firmware_version": "1.4.0", "edition": "v2", "suites": ["en303645"],
            "ics": ICS, "ixit": IXIT, **changes}


def bad_yaml(good: str, name: str) -> str:
    """A real document with the bad part added at its end (a new top-level key)."""
    return good.rstrip("\n") + "\n" + BAD_DOCS[name][0]


def said_at_end(name: str, good: str) -> str:
    """What the line says about BAD_DOCS[name] once added at the end of `good` (see bad_yaml)."""
    return BAD_DOCS[name][1].replace("(line 1)", f"(line {len(good.rstrip(chr(10)).splitlines()) + 1})")


def problem(r) -> str:  # noqa: ANN001 - an httpx response
    assert r.status_code == 422, r.text
    detail = json.loads(r.text)["detail"]
    assert isinstance(detail, list) and {"loc", "msg", "type"} <= set(detail[0]), detail
    return detail[0]["msg"]


@pytest.mark.parametrize("field", ["ics", "ixit"])
@pytest.mark.parametrize("name", BAD_DOCS)
def test_a_booking_with_a_bad_ics_or_ixit_is_422_naming_it(field: str, name: str, client: TestClient,
                                                          acme: dict[str, str], product: int) -> None:
    good = ICS if field == "ics" else IXIT
    r = client.post(f"{API}/bookings", headers=acme, json=booking_body(product, **{field: bad_yaml(good, name)}))
    msg = problem(r)
    assert msg.startswith(f"{field}: ") and said_at_end(name, good) in msg, msg


@pytest.mark.parametrize("name", BAD_DOCS)
def test_bad_assessments_are_422_naming_it(name: str, app: FastAPI, client: TestClient, product: int) -> None:
    store = app.state.services.store
    alice = next(u for u in users(store) if u.name == "alice")
    booking = bk.create_booking(store, org_id=alice.org_id, product_id=product, created_by=alice.id,
                                firmware_version="1.4.0", edition="v2", suites=["en303645"], ics=ICS, ixit=IXIT).id
    eng = bearer(app.state.services.store, "erin", "engineer", "Lab")
    r = client.put(f"{API}/bookings/{booking}/assessments", headers=eng,
                   json={"assessments": bad_yaml(ASSESSMENTS, name)})
    msg = problem(r)
    assert msg.startswith("assessments: ") and said_at_end(name, ASSESSMENTS) in msg, msg


def test_run_refuses_a_provision_the_edition_lacks_before_the_lab_moves(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CERTLAB_INVENTORY", str(ROOT / "inventory" / "sim.yaml"))  # -i's default
    code, err = certlab_main(monkeypatch, capsys, "run", "--provision", "5.3-99")
    assert code == 2, err
    assert one_line(err) == ("certlab: error: --provision 5.3-99: not a provision of EN 303 645 v2; "
                             "give an id such as 5.3-2 (`certlab catalog` lists them)")
