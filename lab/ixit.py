"""The manufacturer's IXIT: the facts a tester needs, in TS 103 701's 29 lists (V1.1.1 names).

Automated suites read what they must know from here instead of guessing: which accounts and
password scheme exist (1-AuthMech), how to deliver and apply an update and with which key it is
signed (7-UpdMech), which interfaces may listen (15-Intf), what the device sends where
(11-ComMech), how to erase it (25-DelFunc). Those lists have typed fields; the purely
descriptive lists carry the TS's fields as text. Every list must be present (an empty list
says "none"), so an incomplete IXIT is noticed before testing, not during it.

    ixit = load_ixit("inventory/products/TH-100/ixit.yaml")
    ixit.listening_ports()        # {("tcp", 22)}
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from lab.yamlfile import read_yaml, validation_line
from lab.errors import CertlabError

_EXAMPLE = "see inventory/products/TH-100/ixit.yaml"

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Port = Annotated[int, Field(ge=1, le=65535)]
Transport = Literal["tcp", "udp"]


class IxitError(CertlabError):
    """The IXIT file is missing, malformed or refers to entries that do not exist."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Entry(_Model):
    id: Id
    description: Text


class Product(_Model):
    """Which product (and firmware) the ICS or IXIT describes."""

    vendor: Text
    model: Text
    firmware: str | None = None
    # a constrained device in EN 303 645's sense (3.1: it cannot use some security measures for
    # lack of resources); decides conditions 4 and 5 of Table B.1 (lab/conditions.py); None: not stated
    constrained: bool | None = None


# --- 1-AuthMech ----------------------------------------------------------------------------


class PasswordGeneration(_Model):
    """How passwords come to be: set by the user, or generated unique per device/user."""

    kind: Literal["user_defined", "unique_per_device", "unique_per_user", "other"]
    length: int | None = Field(default=None, ge=1, le=1024)
    min_length: int | None = Field(default=None, ge=1, le=1024)
    character_classes: tuple[Literal["upper", "lower", "digit", "symbol"], ...] = ()
    pattern: str | None = None  # a regular expression every generated password matches
    description: Text

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _regex_with(value)

    @model_validator(mode="after")
    def _generated_needs_shape(self) -> "PasswordGeneration":
        if self.kind in ("unique_per_device", "unique_per_user") and not (self.length or self.pattern):
            raise ValueError("a generated password needs 'length' or 'pattern' so samples can be checked")
        return self


class BruteForcePrevention(_Model):
    """What stops guessing: a lockout after max_attempts, or a delay between attempts."""

    max_attempts: int | None = Field(default=None, ge=1)
    lockout_seconds: float | None = Field(default=None, ge=0)
    delay_seconds: float | None = Field(default=None, ge=0)
    description: Text

    @model_validator(mode="after")
    def _some_limit(self) -> "BruteForcePrevention":
        if self.lockout_seconds is None and self.delay_seconds is None:
            raise ValueError("give lockout_seconds (with max_attempts) or delay_seconds")
        if self.lockout_seconds is not None and self.max_attempts is None:
            raise ValueError("lockout_seconds needs max_attempts (failed attempts before the lockout)")
        return self


class ChangeMechanism(_Model):
    """How the user changes the authentication value (5.1-4)."""

    command: str | None = None
    min_length: int | None = Field(default=None, ge=1)
    description: Text


AlgorithmName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9@._+-]{0,63}$")]


class SshAlgorithms(_Model):
    """The SSH algorithm names (RFC 4253 7.1) a mechanism's SSH interface offers, per negotiated list (5.1-3).

    The device must offer nothing else and accept nothing else. `macs` may be empty when only
    AEAD ciphers (chacha20-poly1305@openssh.com, aes*-gcm@openssh.com) are offered.
    """

    kex: tuple[AlgorithmName, ...] = Field(min_length=1)
    host_key: tuple[AlgorithmName, ...] = Field(min_length=1)
    ciphers: tuple[AlgorithmName, ...] = Field(min_length=1)
    macs: tuple[AlgorithmName, ...] = ()


class AuthMech(_Entry):
    factor: Literal["password", "pin", "key", "certificate", "token", "biometric", "other"]
    user: str | None = None  # account the mechanism logs in to, e.g. root
    interfaces: tuple[Id, ...] = ()  # 15-Intf ids where it is used
    password_generation: PasswordGeneration | None = None
    brute_force_prevention: BruteForcePrevention | None = None
    change: ChangeMechanism | None = None
    security_guarantees: str = ""
    cryptographic_details: str = ""
    ssh_algorithms: SshAlgorithms | None = None  # typed part of cryptographic_details for its SSH interfaces (5.1-3-2)

    @model_validator(mode="after")
    def _password_needs_generation(self) -> "AuthMech":
        if self.factor in ("password", "pin") and self.password_generation is None:
            raise ValueError(f"factor {self.factor} needs 'password_generation' (how the value is made unique)")
        return self


# --- 2-UserInfo ----------------------------------------------------------------------------


class UserDocumentation(_Model):
    """Where the user documentation covers each topic (text or a reference)."""

    change_mechanisms: str | None = None
    secure_setup: str | None = None
    setup_check: str | None = None
    deletion: str | None = None
    personal_data: str | None = None
    telemetry_data: str | None = None
    sensors: str | None = None
    replacement: str | None = None


_URL = re.compile(r"^https?://[^/\s?#]+[^\s]*$")


def _url(value: str | None) -> str | None:
    if value is not None and not _URL.match(value):
        raise ValueError(f"{value!r} is not a http(s) URL; write e.g. https://example.com/security.txt")
    return value


class SecurityTxt(_Model):
    """The product's RFC 9116 file, and whether the manufacturer signs it (5.2-1-2)."""

    url: str
    signed: bool = False
    # the armored OpenPGP public key that signs it, a file beside the IXIT (required when signed)
    openpgp_key: str | None = None

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        return _url(value) or value

    @model_validator(mode="after")
    def _key_when_signed(self) -> "SecurityTxt":
        if self.signed and not self.openpgp_key:
            raise ValueError("signed: true needs openpgp_key, the armored public key file (beside the IXIT) that signs it")
        return self


Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=300)]


class PolicyStatements(_Model):
    """What the published disclosure policy says in so many words, so the lab checks it without guessing."""

    contact: Phrase  # an e-mail address or URL shown on the page
    timelines: tuple[Phrase, ...] = Field(min_length=1)  # e.g. "within 5 working days"


class NonUpdatableStatements(_Model):
    rationale: Phrase  # words of the page's reason why the software cannot be updated
    replacement: Phrase  # words of the page's hardware replacement plan


class PublishedStatements(_Model):
    vulnerability_disclosure_policy: PolicyStatements | None = None
    non_updatable: NonUpdatableStatements | None = None


class Publication(_Model):
    vulnerability_disclosure_policy: Text  # URL or place
    support_period: Text
    non_updatable: str | None = None
    security_txt: SecurityTxt | None = None  # None: the manufacturer publishes none
    statements: PublishedStatements = PublishedStatements()

    def url_of(self, field: str) -> str | None:
        """The publication's value when it is a web address the lab can fetch, else None (a box, a manual)."""
        value = getattr(self, field)
        return value if isinstance(value, str) and _URL.match(value.strip()) else None


class SupportPeriod(_Model):
    end: dt.date
    description: Text


class DesignationShown(_Model):
    """One place the device itself shows its model designation, as the lab can read it (5.3-16-2)."""

    command: Text  # run in the lab's shell session; its output names the designation
    description: str = ""


class ModelDesignation(_Model):
    designation: Text
    where: Text
    shown_by: tuple[DesignationShown, ...] = ()  # the device-readable places of `where` (label: by hand)


class UserInfo(_Model):
    documentation: UserDocumentation
    publication: Publication
    support_period: SupportPeriod
    model_designation: ModelDesignation


# --- descriptive lists -----------------------------------------------------------------------


class VulnType(_Entry):
    action: Text
    time_frame: Text


class Confirmation(_Entry):
    topic: Literal["vulnerability_actions", "vulnerability_monitoring", "update_procedures",
                   "secure_management", "secure_development"]
    confirmed: bool


class SoftComp(_Entry):
    update_mechanisms: tuple[Id, ...] = ()  # 7-UpdMech ids; empty = not updatable
    justification: str | None = None
    cryptographic_usage: str | None = None

    @model_validator(mode="after")
    def _not_updatable_justified(self) -> "SoftComp":
        if not self.update_mechanisms and not self.justification:
            raise ValueError("a component without update mechanisms needs a 'justification'")
        return self


# --- 7-UpdMech -----------------------------------------------------------------------------


class Signature(_Model):
    algorithm: Literal["Ed25519", "ECDSA-P256", "ECDSA-P384", "RSA-PSS", "RSA-PKCS1v15", "other"]
    public_key_hex: str | None = None
    covers: str | None = None

    @field_validator("public_key_hex")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", value):
            raise ValueError("not hexadecimal; write the raw public key as hex digits")
        return value.lower() if value else value

    @model_validator(mode="after")
    def _ed25519_size(self) -> "Signature":
        if self.algorithm == "Ed25519" and self.public_key_hex is not None and len(self.public_key_hex) != 64:
            raise ValueError("an Ed25519 public key is 32 bytes: 64 hex digits")
        return self


class AntiRollback(_Model):
    enabled: bool
    description: Text


class Delivery(_Model):
    """How a tester hands an image to the device and makes it install it."""

    method: Literal["sftp", "scp", "http", "https", "usb", "ota", "other"]
    interface: Id | None = None  # 15-Intf id
    upload_path: str | None = None
    apply_command: str | None = None  # template, e.g. "update {path}"
    description: Text

    @field_validator("apply_command")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(path="/x")
            except (KeyError, IndexError, ValueError):
                raise ValueError("a command template may use only {path}, e.g. 'update {path}'") from None
        return value


class UpdMech(_Entry):
    image_format: str | None = None
    signature: Signature | None = None
    anti_rollback: AntiRollback | None = None
    ab_slots: bool = False
    delivery: Delivery | None = None
    security_guarantees: str = ""
    cryptographic_details: str = ""
    initiation_and_interaction: str = ""
    update_checking: str = ""
    user_notification: str = ""
    configuration: str = ""


class UpdProc(_Entry):
    time_frame: Text


class ReplSup(_Entry):
    isolation: Text
    hardware_replacement: Text


class SecParam(_Entry):
    type: Literal["critical", "public"]
    security_guarantees: str = ""
    protection_scheme: str = ""
    provisioning_mechanism: str = ""
    generation_mechanism: str = ""
    communication_mechanisms: tuple[Id, ...] = ()  # 11-ComMech ids
    # typed part of protection_scheme, for 5.4-1-2: the setting (test_facts.config_set_command's {key})
    # through which the user sets this parameter, e.g. a Wi-Fi key; the files on the device that
    # hold it (absolute paths); the most permissive mode those files may have, octal ("0600")
    config_key: str | None = None
    stored_in: tuple[str, ...] = ()
    file_mode: str | None = None

    @field_validator("stored_in")
    @classmethod
    def _absolute(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"{path!r}: give the absolute path of the file on the device, e.g. /etc/certlab/secrets.json")
        return value

    @field_validator("file_mode")
    @classmethod
    def _octal(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"0?[0-7]{3}", value):
            raise ValueError(f"{value!r} is not an octal file mode; write it quoted, e.g. \"0600\"")
        return value


# --- 11-ComMech ----------------------------------------------------------------------------


class Carries(_Model):
    credentials: bool = False
    personal_data: bool = False
    sensitive_personal_data: bool = False
    what: tuple[str, ...] = ()


class Reconnect(_Model):
    """How the device retries a failed connection (5.9-3-2): the n-th retry (n = 0, 1, ...) comes
    min(max_seconds, initial_seconds * factor**n) after the failure, less up to `jitter` of that
    (a random fraction: the wait lies in [(1 - jitter) * d, d]). factor 1 and jitter 0: fixed retries."""

    initial_seconds: float = Field(gt=0, le=3600)
    max_seconds: float = Field(gt=0, le=3600)
    factor: float = Field(default=2.0, ge=1, le=10)
    jitter: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> "Reconnect":
        if self.max_seconds < self.initial_seconds:
            raise ValueError(f"max_seconds {self.max_seconds} is below initial_seconds {self.initial_seconds}")
        return self


class ComMech(_Entry):
    # reachable from outside the device's local interfaces (EN 303 645 5.5-7's "remotely accessible
    # network interface"); None: the IXIT does not say, and the tests that need it cannot decide
    remote_access: bool | None = None
    peer: Text
    port: Port | None = None
    transport: Transport | None = None
    protocol: Text
    tls: bool
    encrypted: bool
    carries: Carries
    security_guarantees: str = ""
    cryptographic_details: str = ""
    resilience_measures: str = ""
    reconnect: Reconnect | None = None  # the retry policy behind resilience_measures (5.9-3-2)

    @model_validator(mode="after")
    def _tls_encrypts(self) -> "ComMech":
        if self.tls and not self.encrypted:
            raise ValueError("tls: true means the channel is encrypted; set encrypted: true")
        return self


class Exposure(_Model):
    """Where the device names an implementation: the identification an interface sends, or a command's output."""

    kind: Literal["ssh_identification", "command"]
    interface: Id | None = None  # 15-Intf id (ssh_identification)
    command: str | None = None  # run in the lab's shell session (command)

    @model_validator(mode="after")
    def _complete(self) -> "Exposure":
        if self.kind == "ssh_identification" and not self.interface:
            raise ValueError("kind ssh_identification needs 'interface' (the 15-Intf id of the SSH server)")
        if self.kind == "command" and not self.command:
            raise ValueError("kind command needs 'command' (what the lab runs to read the name and version)")
        return self


class Implementation(_Model):
    """A security implementation by name and version, e.g. {name: dropbear, version: "2022.83"} (5.5-2-2)."""

    name: Text
    version: Text
    exposed: tuple[Exposure, ...] = ()  # where the device shows them; empty: nowhere the lab can read


class NetSecImpl(_Entry):
    review_method: Text
    report: str = ""
    implementations: tuple[Implementation, ...] = ()


class SoftServ(_Entry):
    status: Literal["enabled", "disabled"]
    justification: str = ""
    authentication: tuple[Id, ...] = ()  # 1-AuthMech ids
    allows_configuration: bool = False
    interfaces: tuple[Id, ...] = ()  # 15-Intf ids where the service is reached (5.5-5-2 probes them)


# --- 15-Intf -------------------------------------------------------------------------------

#: the sample's identifying values the lab knows (inventory) and looks for in what is disclosed
Disclosable = Literal["model", "serial", "mac", "firmware_version"]


class Intf(_Entry):
    kind: Literal["physical", "network", "logical"]
    protocol: Text
    port: Port | None = None
    transport: Transport | None = None
    status: Literal["enabled", "disabled", "intermittent"]
    authentication: tuple[Id, ...] = ()  # 1-AuthMech ids; empty = no authentication
    debug: bool = False
    disclosed_information: str = ""
    # identifying values the interface may reveal before authentication (5.6-2-2 compares what the
    # lab finds in its banners and discovery answers); None: not stated, [] : nothing
    discloses: tuple[Disclosable, ...] | None = None
    protection: str = ""

    @model_validator(mode="after")
    def _network_has_port(self) -> "Intf":
        if self.kind == "network" and (self.port is None or self.transport is None):
            raise ValueError("a network interface needs 'port' and 'transport' (tcp or udp)")
        if self.port is not None and self.transport is None:
            raise ValueError("a port needs its 'transport' (tcp or udp)")
        return self


def _regex_with(value: str | None, *groups: str) -> str | None:
    """A regular expression from the IXIT: it compiles and has the named groups a test reads."""
    if value is not None:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        missing = [g for g in groups if g not in compiled.groupindex]
        if missing:
            raise ValueError(f"needs the named group(s) {', '.join(missing)}, e.g. (?P<{missing[0]}>...)")
    return value


def _image_roles(value: dict[str, str]) -> dict[str, str]:
    """Release files by the role a test gives them: the newer and older release, the current one."""
    unknown = set(value) - {"newer", "older", "current"}
    if unknown:
        raise ValueError(f"unknown image roles {sorted(unknown)}; use newer, older, current")
    return value


class SlotPlacement(_Model):
    """How a test lab puts an image into the inactive boot slot, unverified, and boots it (5.7-1-2)."""

    upload_path: str  # where the image is copied (SFTP) before write_command
    write_command: str  # template with {path}: writes the image as it is and selects that slot for the next boot
    boot_command: str  # makes the device boot the selected slot (e.g. reboot)
    description: Text

    @field_validator("write_command")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(path="/x")
        except (KeyError, IndexError, ValueError):
            raise ValueError("a command template may use only {path}, e.g. 'slot-write {path}'") from None
        return value


class TamperAlert(_Model):
    """What the device does once it detects an unauthorised change to its software (5.7-2)."""

    console_pattern: str | None = None  # regular expression of the alert in the console/boot log
    status_command: str | None = None  # prints the tamper state
    status_pattern: str | None = None  # regular expression the status output matches while alerted
    suspended_mechanisms: tuple[Id, ...] = ()  # 11-ComMech ids the device does not use while alerted
    clear_command: str | None = None  # the administrator's acknowledgement: normal network use resumes
    description: Text

    @field_validator("console_pattern", "status_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _regex_with(value)


class SecBoot(_Entry):
    security_guarantees: str = ""
    detection_mechanisms: str = ""
    user_notification: str = ""
    notification_functionality: str = ""
    test_placement: SlotPlacement | None = None  # how the lab may place an image for the secure-boot test
    refusal_pattern: str | None = None  # regular expression: the boot log line saying an image was refused
    tamper_alert: TamperAlert | None = None

    @field_validator("refusal_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _regex_with(value)


class PersData(_Entry):
    processing_activities: Text
    sensitive: bool
    communication_mechanisms: tuple[Id, ...] = ()  # 11-ComMech ids
    # how the data shows in the device's messages (field names or fixed words), so a capture can
    # find it in clear text (5.8-2-2 needs it for every sensitive entry)
    appears_as: tuple[Annotated[str, StringConstraints(min_length=3, max_length=64)], ...] = ()
    obtaining_consent: str = ""
    withdrawing_consent: str = ""


class ResMech(_Entry):
    type: Literal["network", "power"]
    security_guarantees: str = ""


class TelData(_Entry):
    personal_data: bool
    purpose: Text
    security_examination: str = ""


class Wipe(_Model):
    what: Text
    path: str | None = None


class DelFunc(_Entry):
    target_type: Literal["device", "associated_service"]
    command: str | None = None
    wipes: tuple[Wipe, ...] = Field(min_length=1)
    initiation_and_interaction: Text
    confirmation: Text
    reboots: bool = False
    # target_type associated_service: the associated_service operation that performs it (5.11-2-2)
    service_operation: str | None = None
    # a regular expression the command prints where it runs (SSH or console) once the deletion is
    # done: what the lab checks of `confirmation` (5.11-4-1); None: the lab cannot check it
    confirmation_pattern: str | None = None

    @field_validator("confirmation_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        return _regex_with(value)


class UserDec(_Entry):
    options: tuple[str, ...] = Field(min_length=1)
    default: Text
    triggered_by: Text

    @model_validator(mode="after")
    def _default_is_option(self) -> "UserDec":
        if self.default not in self.options:
            raise ValueError(f"default {self.default!r} is not one of the options {list(self.options)}")
        return self


class Command(_Model):
    usage: Text
    purpose: Text


class UserIntf(_Entry):
    interface: Id | None = None  # 15-Intf id
    commands: tuple[Command, ...] = ()


class ExtApi(_Entry):
    interface: Id  # 15-Intf id
    protocol: Text
    port: Port | None = None
    transport: Transport | None = None
    authentication: tuple[Id, ...] = ()  # 1-AuthMech ids


class InpVal(_Entry):
    interfaces: tuple[Id, ...] = Field(min_length=1)  # 15-Intf ids
    inputs: tuple[str, ...] = ()
    on_invalid: Text


class ComponentUpdate(_Model):
    """A component's own update mechanism, for the lab: its version read-out and release files."""

    version_command: Text  # prints the component's installed version
    version_pattern: str  # regular expression with a named group 'version'
    images: dict[str, str] = {}  # role (newer, older) -> release file in the inventory's firmware_dir
    reboots: bool = True  # the device reboots after installing (False: the component restarts on its own)

    @field_validator("version_pattern")
    @classmethod
    def _has_version_group(cls, value: str) -> str:
        return _regex_with(value, "version")

    @field_validator("images")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        return _image_roles(value)


# --- associated_service: not a TS list; the companion app's API as the lab drives it ---------

OPERATION_NAMES = ("create_account", "login", "pair_device", "list_personal_data", "get_consent", "give_consent",
                   "withdraw_consent", "get_update_settings", "set_auto_update", "set_update_notifications",
                   "delete_account")
Pointer = Annotated[str, StringConstraints(pattern=r"^(/[^/]*)+$")]  # RFC 6901, never the whole document


class ServiceOperation(_Model):
    """One call the companion app makes, as a template: {serial} {user} {password} {pairing_code} {value}."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: Annotated[str, StringConstraints(pattern=r"^/")]  # appended to base_url
    body: Any = None  # JSON; a string that is exactly "{value}" becomes the value itself (true, 3 ...)
    expect: tuple[Annotated[int, Field(ge=100, le=599)], ...] = ()  # statuses meaning success; () = any 2xx
    token: Pointer | None = None  # login: where the bearer token is in the answer
    items: Pointer | None = None  # list_personal_data: the list of records
    item_time: Pointer | None = None  # list_personal_data: each record's ISO 8601 time
    value: Pointer | None = None  # reads: where the value is in the answer


class DeviceShows(_Model):
    """Where the device itself shows the update settings it received (read over SSH)."""

    command: Text
    auto_update_pattern: str | None = None  # named group 'value'
    notifications_pattern: str | None = None
    on_value: Text = "on"

    @field_validator("auto_update_pattern", "notifications_pattern")
    @classmethod
    def _value_group(cls, value: str | None) -> str | None:
        return _regex_with(value, "value")


class SettingSpec(_Model):
    read: str  # operation name
    value: Pointer  # where the setting is in `read`'s answer (true = on)
    write: str  # operation name; its body carries "{value}"


class UpdateSettings(_Model):
    auto_update: SettingSpec | None = None
    notifications: SettingSpec | None = None
    device_shows: DeviceShows | None = None


class ConsentSpec(_Model):
    decision: Id  # 26-UserDec id
    personal_data: tuple[Id, ...] = Field(min_length=1)  # 21-PersData ids that list_personal_data returns
    read: str  # operation whose `value` is true while consent is given
    give: str
    withdraw: str
    withdrawal_deletes_history: bool  # 21-PersData withdrawing_consent, typed


class AssociatedService(_Model):
    description: Text
    base_url: Annotated[str, StringConstraints(pattern=r"^https://[^/\s?#]+(/[^\s?#]*)?$")]
    signup: bool = False  # the lab may make its own test account with create_account
    operations: dict[str, ServiceOperation]
    update_settings: UpdateSettings | None = None
    consent: ConsentSpec | None = None

    @field_validator("operations")
    @classmethod
    def _known_names(cls, value: dict[str, ServiceOperation]) -> dict[str, ServiceOperation]:
        unknown = sorted(set(value) - set(OPERATION_NAMES))
        if unknown:
            raise ValueError(f"unknown operation {unknown[0]!r}; the lab knows: {', '.join(OPERATION_NAMES)}")
        return value

    def operation(self, name: str) -> ServiceOperation:
        try:
            return self.operations[name]
        except KeyError:
            raise IxitError(f"ixit: associated_service.operations has no {name!r}; describe the call the companion "
                            f"app makes for it (method, path, body)") from None

    def references(self) -> list[tuple[str, str]]:
        """(field path, operation name) of every operation this block names."""
        refs = [("signup", "create_account")] if self.signup else []
        for key in ("auto_update", "notifications"):
            spec = getattr(self.update_settings, key, None) if self.update_settings else None
            if spec:
                refs += [(f"update_settings.{key}.read", spec.read), (f"update_settings.{key}.write", spec.write)]
        if self.consent:
            refs += [(f"consent.{k}", getattr(self.consent, k)) for k in ("read", "give", "withdraw")]
        return refs


ABSENT_NEVER = ("version_command", "version_pattern")  # every product has a firmware version


class TestFacts(_Model):
    """Facts the lab asked the manufacturer for beyond TS 103 701's lists, so tests can run unattended.

    Everything a test needs to drive this product (how to read its version, change a setting,
    where user data lives, which release files it was delivered with) comes from here or from
    the lists above, never from what one simulator happens to print.
    """

    __test__ = False  # not a pytest test class

    version_command: Text  # prints the installed firmware version
    version_pattern: str  # regular expression with a named group 'version'
    config_set_command: str | None = None  # template with {key} and {value}
    config_get_command: str | None = None  # template with {key}; prints the value
    config_probe_key: str = "certlab-probe"  # a harmless setting the lab may write
    security_setting_key: str | None = None  # a security-relevant setting the lab may change and restore (5.5-5-2)
    user_data_dir: str | None = None  # where a user's files live (5.11)
    telemetry_interval_seconds: float | None = Field(default=None, gt=0, le=3600)
    update_images: dict[str, str] = {}  # role (newer, older) -> file delivered with the sample
    update_seconds: float = Field(default=60, gt=0, le=3600)  # upper bound: install + reboot
    boot_seconds: float = Field(default=60, gt=0, le=3600)  # upper bound: power-on to login prompt
    persistent_storage: tuple[str, ...] | None = None  # folders of the device's writable persistent storage (5.4-1-2)

    @field_validator("persistent_storage")
    @classmethod
    def _storage_folders(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (not value or any(not p.startswith("/") for p in value)):
            raise ValueError("list the absolute folders where the device keeps data across power cycles, e.g. [/data, /etc/certlab]")
        return value

    # 7-UpdMech id -> how the lab drives a component's own update mechanism (every mechanism but the
    # main firmware's, which update_images and version_command describe)
    component_updates: dict[Id, ComponentUpdate] = {}
    # facts of behaviour the product does not have, with why (written `field: {none: "why"}`):
    # said, not left out, and never a made-up number (lab/facts.py: what a test does with it)
    absent: dict[str, Text] = {}

    @model_validator(mode="before")
    @classmethod
    def _none_with_reason(cls, data: Any) -> Any:
        """`telemetry_interval_seconds: {none: "no telemetry"}` -> the field unset, the reason in `absent`."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if not isinstance(data.get("absent") or {}, dict):
            return data  # the field's own validation names the problem
        absent = dict(data.get("absent") or {})
        for key, value in list(data.items()):
            if isinstance(value, dict) and set(value) == {"none"} and key != "absent":
                if key in ABSENT_NEVER:
                    raise ValueError(f"{key}: every product has it; give the value, not 'none'")
                absent[key] = value["none"]
                data.pop(key)
        both = sorted(k for k in absent if k in data)
        if both:
            raise ValueError(f"{both[0]}: given a value and said to be absent; keep one")
        if absent:
            data["absent"] = absent
        return data

    @field_validator("absent")
    @classmethod
    def _absent_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(cls.model_fields) - {"absent"})
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a field of test_facts; fields: {', '.join(cls.model_fields)}")
        return value

    def need(self, name: str) -> Any:
        """The value of a fact a test cannot do without; CertlabError (INCONCLUSIVE) naming why it is not there."""
        from lab.facts import absent_error, missing_error

        if name in self.absent:
            raise absent_error(name, self.absent[name])
        value = getattr(self, name)
        if value is None or value == {}:
            raise missing_error(name)
        return value

    @field_validator("version_pattern")
    @classmethod
    def _has_version_group(cls, value: str) -> str:
        return _regex_with(value, "version")

    @field_validator("update_images")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        return _image_roles(value)


def _list(name: str, *older: str) -> Any:
    """A required IXIT list under its V1.1.1 name (V2.1.1 renames accepted as aliases)."""
    return Field(validation_alias=AliasChoices(name, *older), serialization_alias=name)


class Ixit(_Model):
    """All 29 IXIT lists of one product."""

    product: Product
    auth_mech: tuple[AuthMech, ...] = _list("1-AuthMech")
    user_info: UserInfo = _list("2-UserInfo")
    vuln_types: tuple[VulnType, ...] = _list("3-VulnTypes")
    conf: tuple[Confirmation, ...] = _list("4-Conf")
    vuln_mon: tuple[_Entry, ...] = _list("5-VulnMon")
    soft_comp: tuple[SoftComp, ...] = _list("6-SoftComp")
    upd_mech: tuple[UpdMech, ...] = _list("7-UpdMech")
    upd_proc: tuple[UpdProc, ...] = _list("8-UpdProc")
    repl_sup: tuple[ReplSup, ...] = _list("9-ReplSup")
    sec_param: tuple[SecParam, ...] = _list("10-SecParam")
    com_mech: tuple[ComMech, ...] = _list("11-ComMech", "11-SecComMech")
    net_sec_impl: tuple[NetSecImpl, ...] = _list("12-NetSecImpl")
    soft_serv: tuple[SoftServ, ...] = _list("13-SoftServ")
    sec_mgmt: tuple[_Entry, ...] = _list("14-SecMgmt")
    intf: tuple[Intf, ...] = _list("15-Intf", "15-PhyIntf")
    code_min: tuple[_Entry, ...] = _list("16-CodeMin")
    privl_ctrl: tuple[_Entry, ...] = _list("17-PrivlCtrl")
    acc_ctrl: tuple[_Entry, ...] = _list("18-AccCtrl")
    sec_dev: tuple[_Entry, ...] = _list("19-SecDev")
    sec_boot: tuple[SecBoot, ...] = _list("20-SecBoot")
    pers_data: tuple[PersData, ...] = _list("21-PersData")
    ext_sens: tuple[_Entry, ...] = _list("22-ExtSens")
    res_mech: tuple[ResMech, ...] = _list("23-ResMech")
    tel_data: tuple[TelData, ...] = _list("24-TelData")
    del_func: tuple[DelFunc, ...] = _list("25-DelFunc")
    user_dec: tuple[UserDec, ...] = _list("26-UserDec")
    user_intf: tuple[UserIntf, ...] = _list("27-UserIntf")
    ext_api: tuple[ExtApi, ...] = _list("28-ExtAPI", "28-LogIntf")
    inp_val: tuple[InpVal, ...] = _list("29-InpVal")
    test_facts: TestFacts | None = None  # not a TS list: what the lab asked for to automate
    associated_service: AssociatedService | None = None  # not a TS list: the app's API, for 5.3-6, 5.11-2, 6-x

    def auth_mechanism(self, ident: str) -> AuthMech:
        return _by_id(self.auth_mech, ident, "1-AuthMech")

    def interface(self, ident: str) -> Intf:
        return _by_id(self.intf, ident, "15-Intf")

    def update_mechanism(self, ident: str) -> UpdMech:
        return _by_id(self.upd_mech, ident, "7-UpdMech")

    def network_interfaces(self, *, enabled_only: bool = True) -> tuple[Intf, ...]:
        return tuple(i for i in self.intf if i.kind == "network" and (i.status != "disabled" or not enabled_only))

    def listening_ports(self) -> set[tuple[str, int]]:
        """(transport, port) of every documented network interface that is not disabled."""
        return {(i.transport, i.port) for i in self.network_interfaces() if i.transport and i.port}

    def debug_interfaces(self) -> tuple[Intf, ...]:
        return tuple(i for i in self.intf if i.debug)


def _by_id(entries: tuple[Any, ...], ident: str, name: str) -> Any:
    for entry in entries:
        if entry.id == ident:
            return entry
    raise IxitError(f"ixit: {name}: no entry with id {ident!r}; ids are: {', '.join(e.id for e in entries) or 'none'}")


#: field name -> IXIT list name (V1.1.1), for error paths
LIST_NAMES = {name: str(f.serialization_alias) for name, f in Ixit.model_fields.items() if f.serialization_alias}


def _reference_problems(ixit: Ixit) -> list[tuple[str, str, str]]:
    """(field path, problem, fix) for duplicate ids, dangling references and port clashes."""
    ids = {name: [e.id for e in getattr(ixit, name)] for name in LIST_NAMES if name != "user_info"}
    problems: list[tuple[str, str, str]] = []
    for name, values in ids.items():
        seen: set[str] = set()
        for i, value in enumerate(values):
            if value in seen:
                problems.append((f"{LIST_NAMES[name]}[{i}].id", f"id {value!r} is used twice", "give each entry its own id"))
            seen.add(value)

    refs = [  # (list field, attribute, target list field)
        ("auth_mech", "interfaces", "intf"),
        ("intf", "authentication", "auth_mech"),
        ("soft_comp", "update_mechanisms", "upd_mech"),
        ("sec_param", "communication_mechanisms", "com_mech"),
        ("soft_serv", "authentication", "auth_mech"),
        ("soft_serv", "interfaces", "intf"),
        ("pers_data", "communication_mechanisms", "com_mech"),
        ("user_intf", "interface", "intf"),
        ("ext_api", "interface", "intf"),
        ("ext_api", "authentication", "auth_mech"),
        ("inp_val", "interfaces", "intf"),
    ]
    for source, attr, target in refs:
        known = set(ids[target])
        for i, entry in enumerate(getattr(ixit, source)):
            value = getattr(entry, attr)
            values = value if isinstance(value, tuple) else (value,) if value else ()
            for j, ref in enumerate(values):
                if ref not in known:
                    sub = f"[{j}]" if isinstance(value, tuple) else ""
                    problems.append((f"{LIST_NAMES[source]}[{i}].{attr}{sub} (entry {entry.id!r})",
                                     f"{ref!r} is not an id in {LIST_NAMES[target]}",
                                     f"use one of: {', '.join(ids[target]) or '(none defined)'}"))
    for i, upd in enumerate(ixit.upd_mech):
        if upd.delivery and upd.delivery.interface and upd.delivery.interface not in ids["intf"]:
            problems.append((f"7-UpdMech[{i}].delivery.interface", f"{upd.delivery.interface!r} is not an id in 15-Intf",
                             f"use one of: {', '.join(ids['intf'])}"))
    for i, impl in enumerate(ixit.net_sec_impl):
        for j, part in enumerate(impl.implementations):
            for k, exp in enumerate(part.exposed):
                if exp.interface and exp.interface not in ids["intf"]:
                    problems.append((f"12-NetSecImpl[{i}].implementations[{j}].exposed[{k}].interface (entry {impl.id!r})",
                                     f"{exp.interface!r} is not an id in 15-Intf", f"use one of: {', '.join(ids['intf'])}"))
    problems += _service_problems(ixit)
    ports: dict[tuple[str, int], str] = {}
    for i, intf in enumerate(ixit.intf):
        if intf.port is not None and intf.transport is not None:
            key = (intf.transport, intf.port)
            if key in ports:
                problems.append((f"15-Intf[{i}].port", f"{intf.transport}/{intf.port} is already interface {ports[key]!r}",
                                 "describe each listening port once"))
            ports[key] = intf.id
    return problems


def _service_problems(ixit: Ixit) -> list[tuple[str, str, str]]:
    """Operations the associated_service block, 25-DelFunc and consent name must exist."""
    svc = ixit.associated_service
    problems: list[tuple[str, str, str]] = []
    for i, func in enumerate(ixit.del_func):
        if func.service_operation and (svc is None or func.service_operation not in svc.operations):
            problems.append((f"25-DelFunc[{i}].service_operation (entry {func.id!r})",
                             f"{func.service_operation!r} is not an operation of associated_service",
                             "describe it under associated_service.operations"))
    if svc is None:
        return problems
    for where, name in svc.references():
        if name not in svc.operations:
            problems.append((f"associated_service.{where}", f"{name!r} is not in associated_service.operations",
                             f"describe it there (known: {', '.join(sorted(svc.operations)) or 'none'})"))
    if svc.consent:
        decisions = {d.id for d in ixit.user_dec}
        if svc.consent.decision not in decisions:
            problems.append(("associated_service.consent.decision", f"{svc.consent.decision!r} is not an id in 26-UserDec",
                             f"use one of: {', '.join(sorted(decisions)) or '(none defined)'}"))
        data = {p.id for p in ixit.pers_data}
        for j, ident in enumerate(svc.consent.personal_data):
            if ident not in data:
                problems.append((f"associated_service.consent.personal_data[{j}]", f"{ident!r} is not an id in 21-PersData",
                                 f"use one of: {', '.join(sorted(data)) or '(none defined)'}"))
    return problems


def _missing_list_fix(exc: ValidationError) -> str | None:
    """A whole list left out: say how to write 'none' rather than just 'add it'."""
    err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    if err["type"] == "missing" and len(err["loc"]) == 1 and str(err["loc"][0]) in LIST_NAMES.values():
        return f"add the {err['loc'][0]} list (write [] if the product has none)"
    return None


def _entry_hint(raw: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """' (entry 'ssh')' when the error is inside a list entry that has an id: easier to find."""
    if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(raw.get(str(loc[0])), list):
        items = raw[str(loc[0])]
        entry = items[loc[1]] if loc[1] < len(items) else None
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            return f" (entry {entry['id']!r})"
    return ""


def load_ixit(path: str | Path) -> Ixit:
    """Read and validate an IXIT file; IxitError with one line (file, field path, fix) on any problem."""
    path = Path(path)
    raw = read_yaml(path, IxitError, "IXIT")
    if not isinstance(raw, dict):
        raise IxitError(f"{path}: an IXIT is a mapping of the 29 lists 1-AuthMech ... 29-InpVal; {_EXAMPLE}")
    raw = {str(k): v for k, v in raw.items()}
    try:
        ixit = Ixit.model_validate(raw)
    except ValidationError as exc:
        line = validation_line(str(path), "ixit", exc, lambda loc: _entry_hint(raw, loc))
        fix = _missing_list_fix(exc)
        if fix:
            line = line.replace("; add it", f"; {fix}")
        raise IxitError(line) from None
    problems = _reference_problems(ixit)
    if problems:
        where, problem, fix = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IxitError(f"{path}: ixit: {where}: {problem}; {fix}{more}")
    return ixit
