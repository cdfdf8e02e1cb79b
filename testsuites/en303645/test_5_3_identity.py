"""5.3-16-2: the device shows the model designation its documentation gives.

EN 303 645 5.3-16 asks that the model designation be clearly recognisable, by labelling or a
physical interface; TS 103 701 checks that what the device reports matches the documentation.
IXIT 2-UserInfo `model_designation` gives the designation and `shown_by`, the commands whose
output shows it (the label is for the assessor). The designation must name the sample's model
(inventory `dut.model`), or the documentation is for another product (INCONCLUSIVE); each
command's output must name it as a whole token ("TH-100" is not in "TH-100X").
Side effects: none (read-only commands in the lab's shell session).
"""

from __future__ import annotations

import allure
import pytest

import support
from lab.errors import CertlabError, DutError
from lab.identity import designation_problem, same_model

pytestmark = pytest.mark.bench_state("shell")


@pytest.mark.etsi("5.3-16-2")
def test_5_3_16_2_model_designation_as_documented(dut, bench, ixit, evidence):
    """Every place the IXIT says the device shows its model designation names that designation."""
    md = ixit.user_info.model_designation
    model = bench.config.dut.model
    if not same_model(md.designation, model):
        raise CertlabError(f"ixit: 2-UserInfo model_designation.designation {md.designation!r} does not name the "
                           f"sample's model {model!r} (inventory dut.model): use the IXIT of this model")
    if not md.shown_by:
        raise CertlabError("ixit: 2-UserInfo model_designation.shown_by is empty; the lab needs the command(s) whose "
                           f"output shows the designation (where: {md.where[:100]!r}); add them, or check by hand")
    seen, problems = [], []
    for place in md.shown_by:
        with allure.step(f"run `{place.command}`"):
            out = support.ssh_output(bench, place.command)
        problem = designation_problem(out, md.designation, f"`{place.command}`")
        seen.append({"command": place.command, "output": out[:2000], "problem": problem})
        if problem:
            problems.append(problem)
    evidence.json("model-designation", {"designation": md.designation, "where": md.where, "inventory_model": model,
                                        "shown_by": seen})
    if problems:
        raise DutError("5.3-16-2: the device does not show its documented model designation: " + " | ".join(problems))
