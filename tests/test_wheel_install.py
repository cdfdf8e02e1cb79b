"""certlab installed like any package (issue 18): the wheel, a fresh venv, a lab made with `certlab init`.

Built from this tree (`pip wheel --no-deps --no-build-isolation`), installed into a fresh venv with
the locked dependencies (requirements.txt, hash-checked, from pip's cache or the lab's index) and
then the wheel with --no-deps, and driven from a folder outside the source tree with no PYTHONPATH:
help, `certlab init`, inventory and product checks, and the examples suite on one bench of the
shipped simulated lab (under the e2e lock, as every manual end-to-end run on this machine). Nothing
the run writes may point into the source tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.sim.netns import unavailable_reason

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "lab", "fixtures", "testsuites", "inventory")
E2E_LOCK = Path("/tmp/certlab-e2e.lock")
LOCK_WAIT = 240.0  # s: others' end-to-end runs hold the lock a few minutes at most
OFFLINE = ("Could not find a version", "No matching distribution", "Failed to establish a new connection",
           "Temporary failure in name resolution", "Network is unreachable", "ConnectionError", "ReadTimeoutError")


def sh(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{proc.args}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@contextlib.contextmanager
def e2e_lock() -> Iterator[None]:
    """The machine's one simulated-lab-at-a-time lock (the shipped sim lab's ports and namespaces are fixed)."""
    with open(E2E_LOCK, "a") as fh:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.skip(f"{E2E_LOCK} held by another end-to-end run for over {LOCK_WAIT:.0f} s")
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a lab PC: the venv's bin on PATH, nothing of the checkout, no inventory set."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "CERTLAB_INVENTORY", "CERTLAB_REPORTS_DIR", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not p.startswith(str(ROOT))]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["COLUMNS"] = "200"
    return env


def one_bench(sim: Path) -> Path:
    """The shipped simulated lab cut to bench1: a short run, and the lab's own names and ports."""
    doc = yaml.safe_load(sim.read_text())
    hosts = doc["all"]["children"]["benches"]["hosts"]
    doc["all"]["children"]["benches"]["hosts"] = {"bench1": hosts["bench1"]}
    path = sim.with_name("one-bench.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def pointing_into_source(folder: Path, *texts: str) -> list[str]:
    tree = f"{ROOT}/"
    found = [f"output: ...{t[max(0, t.find(tree) - 80):t.find(tree) + 80]!r}" for t in texts if tree in t]
    for path in folder.rglob("*"):
        if path.is_file() and tree.encode() in path.read_bytes():
            found.append(str(path.relative_to(folder)))
    return found


def test_the_wheel_installs_in_a_fresh_venv_and_runs_a_lab_from_outside_the_tree(tmp_path: Path) -> None:
    assert not tmp_path.is_relative_to(ROOT)
    times: dict[str, float] = {}
    start = time.monotonic()

    venv = tmp_path / "venv"
    ok(sh([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path))
    py = str(venv / "bin" / "python")
    log = tmp_path / "deps.log"
    with open(log, "w") as out:  # the locked dependencies install while the wheel builds
        deps = subprocess.Popen([py, "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check",
                                 "--require-hashes", "-r", str(ROOT / "requirements.txt")], cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        src = tmp_path / "src"  # a copy: the build leaves nothing (build/, egg-info) in the checkout
        for name in SOURCES:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                src.mkdir(exist_ok=True)
                shutil.copy2(ROOT / name, src / name)
        ok(sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
               str(tmp_path / "dist"), str(src)], cwd=tmp_path, timeout=180))
        (wheel,) = (tmp_path / "dist").glob("certlab-*.whl")
        times["build"] = time.monotonic() - start
        code = deps.wait(timeout=600)
    finally:
        if deps.poll() is None:
            deps.kill()
            deps.wait()
    said = log.read_text(errors="replace")
    if code != 0 and any(word in said for word in OFFLINE):
        pytest.skip(f"the locked dependencies cannot be installed here (no index, nothing cached): {said[-300:]}")
    assert code == 0, f"pip install -r requirements.txt: exit {code}\n{said[-3000:]}"
    ok(sh([py, "-m", "pip", "install", "-q", "--no-compile", "--no-deps", str(wheel)], cwd=tmp_path))
    times["venv"] = time.monotonic() - start - times["build"]

    work = tmp_path / "work"  # the lab PC's folder: no source tree anywhere above it
    work.mkdir()
    env = clean_env(venv)
    certlab = str(venv / "bin" / "certlab")
    where = ok(sh([py, "-c", "import lab, fixtures, testsuites, certlab_examples as e; "
                   "print(lab.__path__[0], fixtures.__path__[0], testsuites.__path__[0], e.__path__[0])"], cwd=work, env=env))
    assert all(Path(p).is_relative_to(venv) for p in where.split()), where
    assert "init" in ok(sh([certlab, "--help"], cwd=work, env=env))
    ok(sh([certlab, "init", "lab", "--example", "sim"], cwd=work, env=env))
    assert "bench1" in ok(sh([certlab, "inventory", "check", "-i", "lab/inventory.yaml"], cwd=work, env=env))
    assert "are valid for EN 303 645" in ok(sh([certlab, "product", "check", "-i", "lab/inventory.yaml"], cwd=work, env=env))
    inventory = one_bench(work / "lab" / "sim" / "sim.yaml")
    times["checks"] = time.monotonic() - start - times["venv"] - times["build"]

    why = unavailable_reason()
    if why is not None:
        pytest.skip(f"the simulated lab needs network namespaces: {why}")
    with e2e_lock():
        lab_start = time.monotonic()
        try:
            ok(sh([certlab, "lab", "up", "-i", str(inventory)], cwd=work, env=env))
            run = sh([certlab, "run", "-i", str(inventory), "--suite", "testsuites/examples"], cwd=work, env=env,
                     timeout=240)
        finally:
            down = sh([certlab, "lab", "down", "-i", str(inventory)], cwd=work, env=env)
        times["lab"] = time.monotonic() - lab_start
    ok(run)
    ok(down)
    (run_dir,) = (work / "reports").iterdir()  # the default reports folder: ./reports of where it ran
    doc = json.loads((run_dir / "verdicts.json").read_text())
    assert doc["results"] and {r["verdict"] for r in doc["results"]} == {"PASS"}, doc["results"]
    assert {r["bench"] for r in doc["results"]} == {"bench1"}
    assert pointing_into_source(run_dir, run.stdout, run.stderr) == []
    times["total"] = time.monotonic() - start
    print("wheel test seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
