"""`certlab init DIR`: a new lab's starting folder, valid as written, for a lab to edit.

    write_lab(Path("mylab"), model="CAM-1")           # inventory.yaml, lab-profile.yaml, products/CAM-1/
    write_lab(Path("demo"), example_sim=True)          # ... and the shipped simulated lab under sim/

What it writes validates at once (`certlab inventory check -i DIR/inventory.yaml`, `certlab product
check -i DIR/inventory.yaml`), so a lab starts from a working file and changes one thing at a time:

* inventory.yaml: one real-hardware bench (SCPI or relay-board power, serial console, SSH), each
  field explained, modelled on the shipped example-hardware.yaml;
* lab-profile.yaml: the lab's name, address and signatories for reports (placeholders to replace);
* products/<MODEL>/: an ICS answering every provision Y (so every test runs until the
  manufacturer's answers replace them: never a NOT_APPLICABLE the manufacturer did not give), an IXIT
  with its 29 lists empty, and the assessor's record with every hand-decided case of the ICS listed
  as a commented entry (lab.assess_template), so it loads before anything is decided;
* with example_sim: the shipped simulated lab (certlab_examples) copied to DIR/sim/, so a fresh install
  runs `certlab lab up -i DIR/sim/sim.yaml` and `certlab run` on it without a source checkout.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

from lab import resources
from lab.errors import CertlabError

__all__ = ["DEFAULT_MODEL", "write_lab"]

DEFAULT_MODEL = "MY-DEVICE-1"
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # a folder name under products/
_IXIT_LISTS = ("1-AuthMech", "3-VulnTypes", "4-Conf", "5-VulnMon", "6-SoftComp", "7-UpdMech", "8-UpdProc",
               "9-ReplSup", "10-SecParam", "11-ComMech", "12-NetSecImpl", "13-SoftServ", "14-SecMgmt", "15-Intf",
               "16-CodeMin", "17-PrivlCtrl", "18-AccCtrl", "19-SecDev", "20-SecBoot", "21-PersData", "22-ExtSens",
               "23-ResMech", "24-TelData", "25-DelFunc", "26-UserDec", "27-UserIntf", "28-ExtAPI", "29-InpVal")

_INVENTORY = """\
# The lab's inventory (Ansible YAML): one bench per DUT sample, what powers it, where its console
# and network are. Written by `certlab init`; check it with
#   certlab inventory check -i {folder}/inventory.yaml
# then point certlab at it: export CERTLAB_INVENTORY=$PWD/{folder}/inventory.yaml
# The bench below is an example of real hardware: replace the addresses, devices and the DUT with
# yours (nothing here is contacted until `certlab lab check` or `certlab run`). More benches: copy
# the host block. Secrets are never written here: `{{env: NAME}}` or `{{file: PATH}}` only.
all:
  vars:
    certlab:
      lab: {lab}
      lab_profile: lab-profile.yaml   # the lab's name, address and signatories for test reports
      operator: {operator}
    ansible_user: root
    ansible_connection: paramiko
  children:
    benches:
      hosts:
        bench1:
          ansible_host: 192.168.50.11          # the DUT's address on the lab network
          certlab:
            # Power: a SCPI supply or switch unit on the lab LAN (channel = its output), or a USB relay
            # board on this machine instead:
            #   power: {{driver: relay_board, url: /dev/serial/by-id/usb-1a86_USB_Serial-if00-port0, channel: 1, baud: 9600}}
            power: {{driver: scpi, resource: "TCPIP::192.168.50.2::5025::SOCKET", channel: 1, dialect: output, timeout: 3}}
            # Serial console: a USB-UART adapter by its stable by-id path (or rfc2217://HOST:PORT for a
            # console server); the prompts are how certlab knows where the DUT's boot has got to.
            console: {{url: /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0, baud: 115200,
                      boot_banner: "Starting kernel", login_prompt: "login:\\\\s*$", password_prompt: "[Pp]assword:\\\\s*$",
                      shell_prompt: "[#$] $", boot_timeout: 90}}
            network: {{address: 192.168.50.11, interface: eth0}}   # the lab PC's interface towards the DUT
            ssh: {{user: root, port: 22, password: {{env: BENCH1_ROOT_PASSWORD}}}}
            # the sample: its model names products/<model>/ (ICS, IXIT, assessor's record) beside this file
            dut: {{model: {model}, serial: SN0001, mac: "02:00:00:00:00:01", firmware: 1.0.0,
                  label_password: {{env: BENCH1_LABEL_PASSWORD}}}}
"""

_PROFILE = """\
# The lab's details, printed on every test report (ISO/IEC 17025 7.8.2.1), and the people the lab
# has authorised to approve reports. Written by `certlab init`: replace every value.
laboratory:
  name: Example Test Laboratory
  address:
    - 1 Example Street
    - 1000 Example City
    - Country
  # accreditation: {body: NAME, number: "123-TEST", scope: "ETSI EN 303 645 / TS 103 701"}
  contact: {email: lab@example.org, phone: "+00 0 000 00 00", web: https://example.org}
report:
  title: Test report
signatories:
  - {name: Technical Manager Name, role: Technical Manager}
"""


def write_lab(folder: Path, *, model: str = DEFAULT_MODEL, example_sim: bool = False,
              today: dt.date | None = None) -> list[Path]:
    """Write a starting lab into `folder` (new or empty); the files written, for the caller to list."""
    if not _MODEL.match(model):
        raise CertlabError(f"--model {model!r}: give a model name of letters, digits, '.', '_' or '-' "
                           f"(it names the folder products/<model>/), e.g. --model {DEFAULT_MODEL}")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CertlabError(f"{folder}: exists and is not an empty folder; certlab init writes a new lab: "
                           "give a new or empty folder")
    product = folder / "products" / model
    product.mkdir(parents=True, exist_ok=True)
    lab = re.sub(r"[^a-z0-9-]+", "-", folder.resolve().name.lower()).strip("-") or "lab"
    files = {
        folder / "inventory.yaml": _INVENTORY.format(folder=folder, lab=lab, model=model,
                                                     operator=json.dumps("Example Test Laboratory")),
        folder / "lab-profile.yaml": _PROFILE,
        product / "ics.yaml": _ics(model),
        product / "ixit.yaml": _ixit(model),
    }
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    record = product / "assessments.yaml"
    record.write_text(_assessments(model, product / "ics.yaml", today), encoding="utf-8")
    written = [*files, record]
    if example_sim:
        shutil.copytree(resources.examples_root(), folder / "sim",
                        ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
        written.append(folder / "sim")
    return written


def _ics(model: str) -> str:
    """Every provision of EN 303 645 V2.1.1 answered Y: all tests run until the manufacturer answers."""
    from lab.catalog import load_catalog

    catalog = load_catalog("v2", suites=None)
    lines = [
        f"# ICS (Implementation Conformance Statement) of {model} against {catalog.en}: the manufacturer's",
        "# answer per provision: Y (detail: the measures), N (detail: why not) or N/A (detail: the condition",
        "# of Table B.1 that is not met). Written by `certlab init` as a SKELETON: every answer is Y, so",
        "# every test runs and nothing is NOT_APPLICABLE until the manufacturer's own answers replace these.",
        "edition: v2",
        "product:",
        "  vendor: Example Devices   # the manufacturer",
        f"  model: {json.dumps(model)}",
        "  firmware: 1.0.0",
        "",
        "provisions:",
    ]
    for prov in catalog.provisions:
        title = (prov.title or "").replace("\n", " ")
        lines.append(f"  # {prov.id} ({prov.status.code()}): {title}"[:110])
        lines.append(f'  "{prov.id}": {{support: Y}}')
    return "\n".join(lines) + "\n"


def _ixit(model: str) -> str:
    """The 29 lists of TS 103 701, empty, and 2-UserInfo's required entries as placeholders."""
    first = f"{_IXIT_LISTS[0]}: []"
    rest = "\n".join(f"{name}: []" for name in _IXIT_LISTS[1:])
    return f"""\
# IXIT (Implementation eXtra Information for Testing) of {model}: the manufacturer's facts the tests
# use, in the 29 lists of ETSI TS 103 701. Written by `certlab init` as a SKELETON: the lists are
# empty and 2-UserInfo holds placeholders; a test that needs a fact not given here ends
# INCONCLUSIVE naming it (`certlab product facts --model {model} -i inventory.yaml` lists them).
product:
  vendor: Example Devices
  model: {json.dumps(model)}
  firmware: 1.0.0
  constrained: false   # a constrained device in EN 303 645's sense (decides conditions 4 and 5)

{first}

2-UserInfo:
  documentation: {{}}   # where the user documentation covers each topic (change_mechanisms, deletion, ...)
  publication:
    vulnerability_disclosure_policy: "to be given by the manufacturer (URL or place)"
    support_period: "to be given by the manufacturer (URL or place)"
  support_period:
    end: 2099-12-31   # REPLACE: the end of the published support period
    description: to be given by the manufacturer
  model_designation:
    designation: {json.dumps(model)}
    where: to be given by the manufacturer (label, boot log, ...)

{rest}
"""


def _assessments(model: str, ics_path: Path, today: dt.date | None) -> str:
    """`certlab assess template`'s skeleton with each entry commented out: it loads before anything is
    decided, and the assessor uncomments and fills an entry when the lab decides that case."""
    from lab.assess_template import render_template
    from lab.catalog import load_catalog
    from lab.ics import load_ics

    text = render_template(load_catalog("v2"), load_ics(ics_path, "v2"), model, today=today)
    lines = []
    for line in text.splitlines():
        if line.startswith("assessor:"):
            line = ('assessor: {name: "to be named", role: "lead assessor"}   '
                    '# who decides, e.g. {name: "Dana Reuter", role: "lead assessor"}')
        elif line in ("decisions:", "performed:"):
            line += " {}   # uncomment and fill the entries below as the lab decides them"
        elif line.startswith("  ") and not line.lstrip().startswith("#"):
            line = "  #" + line[1:]
        lines.append(line)
    return "\n".join(lines) + "\n"
