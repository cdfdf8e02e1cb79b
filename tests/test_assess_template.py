"""`certlab assess template`: the skeleton of the assessor's record, and that it loads once filled."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab.assessments import AssessmentsError, load_assessments
from lab.automation import marked_tests
from lab.catalog import load_catalog
from lab.ics import load_ics

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ROOT / "inventory" / "products" / "TH-100"


def template(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", "assess", "template", *args], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200", "CERTLAB_INVENTORY": str(ROOT / "inventory" / "sim.yaml")})


def fill(text: str) -> str:
    """What an assessor does: a name, a verdict, a reason, a date, the samples and the photo."""
    text = text.replace('assessor: {name: "", role: ""}', 'assessor: {name: "T. Tester", role: "assessor"}')
    text = re.sub(r"verdict: +# .*", "verdict: PASS", text)
    text = text.replace('reasoning: ""', 'reasoning: "the design meets the provision as the IXIT describes"')
    text = text.replace('reason: ""', 'reason: "examined on the sample as TS 103 701 describes"')
    text = re.sub(r"date: +# YYYY-MM-DD", "date: 2026-11-21", text)
    text = re.sub(r"samples: \[\] +#.*", "samples: [TH100-0001]", text)
    return re.sub(r"evidence: \[\] +#.*", "evidence: [photo.png]", text)


@pytest.mark.parametrize("edition", ["v2", "v3"])
def test_the_template_lists_every_case_not_automated_and_loads_once_filled(tmp_path: Path, edition: str) -> None:
    ics_file = PRODUCT / ("ics.yaml" if edition == "v2" else "ics.v3.yaml")
    if not ics_file.is_file():
        pytest.skip(f"no {edition} ICS shipped for TH-100")
    proc = template("--model", "TH-100", "--edition", edition)
    assert proc.returncode == 0, proc.stderr
    cat, ics = load_catalog(edition), load_ics(ics_file, edition)
    marked = marked_tests(edition)

    def in_scope(tc) -> bool:  # noqa: ANN001
        entry = ics.entry(tc.provision)
        prov = cat.provision(tc.provision)
        return entry is None or not (entry.support == "N/A" or (prov.status.requirement == "R" and entry.support == "N"))

    automated = {tc.id for tc in cat.test_cases if tc.coverage == "automated" or tc.id in marked}
    conceptual = {tc.id for tc in cat.test_cases if tc.kind in ("conceptual", "both") and in_scope(tc)}
    functional = {tc.id for tc in cat.test_cases if tc.kind in ("functional", "both") and in_scope(tc)} - automated

    path = tmp_path / "assessments.yaml"
    path.write_text(proc.stdout)
    with pytest.raises(AssessmentsError):  # unfilled, it decides nothing
        load_assessments(path, edition, model="TH-100")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    path.write_text(fill(proc.stdout))
    loaded = load_assessments(path, edition, model="TH-100")
    assert set(loaded.data.decisions) == conceptual
    assert set(loaded.data.performed) == functional and functional
    assert not automated & set(loaded.data.performed)
    assert "# 5.6-3-2 purpose: check that" in proc.stdout or edition == "v3"  # 5.2-1-2 is automated now
    assert "5.3-14 (N/A)" in proc.stdout.split("edition:")[0]


def test_an_unknown_model_is_one_line(tmp_path: Path) -> None:
    proc = template("--model", "NOPE-1")
    assert proc.returncode == 2 and "no ICS in" in proc.stderr and "Traceback" not in proc.stderr
