"""Error classes that decide a verdict.

Four families, because a certifier must never see a lab problem reported against a product:
bad input (the user must fix a file: exit 2), lab faults and paperwork still pending
(INCONCLUSIVE) and DUT errors (FAIL).
"""

from __future__ import annotations


class CertlabError(Exception):
    """Bad input: a file, field or option the user must fix. One line, never a traceback."""


class InventoryError(CertlabError):
    """The inventory file is missing, malformed or inconsistent."""


class FirmwareFormatError(CertlabError):
    """A firmware image file cannot be parsed."""


class LabFault(Exception):
    """The lab could not do its job (relay, console, network, provisioning): INCONCLUSIVE.

    `cause` is a short human sentence; `bench` names the bench when known.
    """

    kind = "lab fault"

    def __init__(self, cause: str, *, bench: str | None = None):
        super().__init__(cause)
        self.cause = cause
        self.bench = bench

    def __str__(self) -> str:
        where = f"bench {self.bench}: " if self.bench else ""
        return f"{where}{self.kind}: {self.cause}"


class PowerFault(LabFault):
    kind = "power relay fault"


class ConsoleFault(LabFault):
    kind = "console fault"


class NetworkFault(LabFault):
    kind = "network fault"


class SSHUnreachable(LabFault):
    kind = "ssh unreachable"


class ProvisionFault(LabFault):
    kind = "provisioning fault"


class LabLoginRejected(LabFault):
    """The DUT rejected the login the inventory gives the lab (ssh.user/ssh.password, over SSH or
    on the console): the lab cannot drive it.

    Outside the 5.1 password tests (which judge logins by `try_login` outcomes, where a wrong
    label password is the product's defect) this says nothing about the product: INCONCLUSIVE.
    The bench strategy does not latch it: a later step may restore a password a test changed.
    """

    kind = "lab login rejected"


class PaperworkPending(Exception):
    """A decision the lab's people owe (an assessor's record) is missing: INCONCLUSIVE.

    Not a LabFault: nothing on the bench failed, so it is never retried on a spare bench and
    never counts toward a bench's quarantine. `cause` is a short human sentence.
    """

    kind = "paperwork pending"

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause

    def __str__(self) -> str:
        return f"{self.kind}: {self.cause}"


class SampleUnusable(LabFault):
    """An earlier test left the sample unable to boot: later tests on it cannot be decided."""

    kind = "sample unusable"


class DutError(AssertionError):
    """The DUT misbehaved. Subclasses AssertionError so pytest and Allure report a failure."""


class BootFailure(DutError):
    """The DUT printed something after power-on but never reached its boot banner."""


class ExpectTimeout(DutError):
    """Bytes arrived on the console but the expected pattern did not; `tail` holds the last output."""

    def __init__(self, message: str, *, tail: str = ""):
        super().__init__(message)
        self.tail = tail


class CommandFailed(DutError):
    """A command the DUT documents as working returned an error."""
