"""ServiceClient: the product's app API driven as the IXIT's `associated_service` documents it.

Every call is an IXIT operation by name (a missing one is a CertlabError naming
`associated_service.operations.<name>`), sent through lab/web/fetch.py's `request_json` (the one
HTTP layer: connect_to, CA, timeout, host allowlist, path check). Every exchange is kept for the
evidence with the passwords, tokens and pairing codes masked, in URLs and error texts too.

Verdicts: a status the operation does not expect, an answer without the documented pointer, a
timeout or TLS error is the service's (DutError, naming the operation); a network failure with no
working path check is the lab's (LabFault); the inventory's own account refused is the lab's
(LabLoginRejected); a missing IXIT or inventory field is bad input (CertlabError).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lab.errors import CertlabError, DutError, LabFault, LabLoginRejected
from lab.service.api import PointerError, Redactor, fill_body, fill_text, join_url, resolve_pointer
from lab.service.records import Moment, Record, moment_of, records_of

if TYPE_CHECKING:
    from lab.bench import Bench
    from lab.ixit import AssociatedService, Ixit, ServiceOperation
    from lab.web.fetch import HttpTarget, JsonResponse

STATUS_WORDS = {401: "not authorised", 403: "forbidden", 404: "not found", 409: "conflict", 500: "server error",
                502: "bad gateway", 503: "unavailable"}
EXCERPT = 300
MARGIN_S = 2.0  # beyond the documented telemetry interval: the reading's trip through device, network, service


def absence_window(interval: float) -> float:
    """How long the lab watches for a reading that must not come: one telemetry interval + 2 s."""
    return interval + MARGIN_S


def appearance_bound(interval: float) -> float:
    """How long the lab waits for a reading that must come: two telemetry intervals + 2 s."""
    return 2 * interval + MARGIN_S


@dataclass(frozen=True)
class Reply:
    """One operation's answer: status, JSON (None if the body was not JSON), headers, and when it happened."""

    operation: str
    status: int
    data: Any
    headers: dict[str, str]
    moment: Moment

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _send_default(target: "HttpTarget", method: str, url: str, *, headers: dict[str, str], body: Any) -> "JsonResponse":
    from lab.web.fetch import request_json

    return request_json(target, method, url, headers=headers, body=body)


def random_user() -> str:
    return f"certlab-{secrets.token_hex(6)}@lab.invalid"


def random_password() -> str:
    return f"{secrets.token_urlsafe(15)}-Aa1"  # random, and with the character classes password rules ask for


class ServiceClient:
    """The lab's client of one bench's associated service: accounts, operations, evidence."""

    def __init__(self, service: "AssociatedService", target: "HttpTarget", *, serial: str,
                 pairing_code: Callable[[], str] | None = None, account: tuple[str, Callable[[], str]] | None = None,
                 bench: str | None = None, send: Callable[..., "JsonResponse"] = _send_default) -> None:
        self.service = service
        self.target = target
        self.serial = serial
        self.bench = bench
        self._pairing_code = pairing_code
        self._inventory_account = account
        self._send = send
        self.redactor = Redactor()
        self._exchanges: list[dict[str, Any]] = []
        self.accounts: list[TestAccount] = []
        self.notes: list[str] = []  # what teardown could not do, for the evidence

    # --- construction from a bench ----------------------------------------------------------

    @classmethod
    def for_bench(cls, bench: "Bench", ixit: "Ixit") -> "ServiceClient":
        """The client for `bench`'s sample: the IXIT's associated_service over the inventory's `service`."""
        from lab.web.fetch import bench_target

        service = ixit.associated_service
        if service is None:
            raise CertlabError("ixit: associated_service is not given; the lab needs the companion app's API "
                               "(base_url, operations) to run this case (docs/associated-services.md)")
        target = bench_target(bench, "service", [service.base_url], hosts_field="associated_service.base_url")
        resource, inv = bench.config.service, bench.inventory
        assert resource is not None  # bench_target refuses a bench without one
        code_ref = bench.config.dut.pairing_code
        pairing = (lambda: inv.resolve_secret(code_ref, field=f"benches.{bench.name}.dut.pairing_code")) if code_ref else None
        account = None
        if resource.account is not None:
            acct = resource.account
            account = (acct.user, lambda: inv.resolve_secret(acct.password, field=f"benches.{bench.name}.service.account.password"))
        return cls(service, target, serial=bench.config.dut.serial, pairing_code=pairing, account=account,
                   bench=bench.name)

    # --- operations --------------------------------------------------------------------------

    def operation(self, name: str) -> "ServiceOperation":
        return self.service.operation(name)  # IxitError (a CertlabError) naming the missing operation

    def has(self, name: str) -> bool:
        return name in self.service.operations

    def pairing_code(self) -> str:
        if self._pairing_code is None:
            raise CertlabError(f"the inventory gives no dut.pairing_code for bench {self.bench}: add the code on the "
                               "sample's label that pairs it to an account, e.g. pairing_code: {file: secrets/...}")
        code = self._pairing_code()
        self.redactor.add(code)
        return code

    def call(self, name: str, *, token: str | None = None, values: dict[str, Any] | None = None,
             check: bool = True) -> Reply:
        """Run operation `name`; with `check`, a status it does not expect is a DutError naming it."""
        op = self.operation(name)
        values = {"serial": self.serial, **(values or {})}
        url = join_url(self.service.base_url, fill_text(op.path, values, operation=name, url=True))
        body = fill_body(op.body, values, operation=name) if op.body is not None else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        record: dict[str, Any] = {"operation": name, "method": op.method, "url": url, "request_headers": headers,
                                  "request_body": body}
        before = datetime.now(timezone.utc)
        try:
            resp = self._send(self.target, op.method, url, headers=headers, body=body)
        except (DutError, LabFault, CertlabError) as exc:
            masked = self.redactor.text(f"{name} ({op.method} {url}): {exc.cause if isinstance(exc, LabFault) else exc}")
            record["error"] = f"{type(exc).__name__}: {masked}"
            self._keep(record)
            if isinstance(exc, LabFault):
                exc.cause = masked
            exc.args = (masked,)
            raise exc from None
        after = datetime.now(timezone.utc)
        resp_headers = {k: v for k, v in resp.headers}
        if op.token and resp.data is not None:  # learn the token before the exchange is kept
            try:
                got = resolve_pointer(resp.data, op.token)
                if isinstance(got, str):
                    self.redactor.add(got)
            except PointerError:
                pass
        record.update(status=resp.status, reason=resp.reason, response_headers=resp_headers, seconds=resp.seconds,
                      at=resp.at, response_body=resp.data if resp.json_error is None else
                      resp.body[:EXCERPT].decode(errors="replace"))
        if resp.json_error:
            record["json_error"] = resp.json_error
        self._keep(record)
        reply = Reply(name, resp.status, resp.data if resp.json_error is None else None, resp_headers,
                      moment_of(resp_headers, before, after))
        if check:
            self.expect(reply, op)
        return reply

    def expect(self, reply: Reply, op: "ServiceOperation | None" = None) -> None:
        op = op or self.operation(reply.operation)
        wanted = op.expect
        good = reply.status in wanted if wanted else reply.ok
        if not good:
            word = STATUS_WORDS.get(reply.status, "")
            shown = self.redactor.text(str(self.redactor.data(reply.data)))[:EXCERPT] if reply.data is not None else ""
            raise DutError(f"the service answered {reply.operation} ({op.method} {self.redactor.text(op.path)}) with "
                           f"HTTP {reply.status}{f' ({word})' if word else ''}, not "
                           f"{'/'.join(map(str, wanted)) if wanted else 'a 2xx success'} as the IXIT documents"
                           + (f": {shown}" if shown else ""))

    def pointer(self, reply: Reply, pointer: str, *, field_name: str) -> Any:
        """The value at `pointer` in `reply`; missing is the service's fault (its answer is not as documented)."""
        if reply.data is None:
            raise DutError(f"the service's answer to {reply.operation} is not JSON, so it has no {field_name} {pointer}")
        try:
            return resolve_pointer(reply.data, pointer)
        except PointerError as exc:
            raise DutError(f"the service's answer to {reply.operation} has no {field_name} {pointer} ({exc})") from None

    # --- accounts ----------------------------------------------------------------------------

    def new_account(self) -> "TestAccount":
        """A fresh account (signup: true) or the inventory's `service.account` (once), not yet logged in."""
        if self.service.signup:
            user, password = random_user(), random_password()
            self.redactor.add(password)
            account = TestAccount(self, user, password, created=False)
            self.accounts.append(account)
            self.call("create_account", values=account.values())
            account.created = True
            return account
        if self._inventory_account is None:
            raise CertlabError(f"ixit: associated_service.signup is false and the inventory gives no service.account "
                               f"for bench {self.bench}: add service: {{account: {{user: ..., password: {{file: ...}}}}}} "
                               "(the test account the manufacturer gave the lab)")
        if any(not a.created for a in self.accounts):
            raise CertlabError("this case needs a second account, and the IXIT says signup: false (the lab cannot "
                               "create one): test it by hand or let the lab sign up (associated_service.signup)")
        user, secret = self._inventory_account
        password = secret()
        self.redactor.add(password)
        account = TestAccount(self, user, password, created=False)
        self.accounts.append(account)
        return account

    def paired_account(self) -> "TestAccount":
        """A fresh account, logged in, with the bench's sample paired to it: the initialised state."""
        account = self.new_account()
        account.login()
        account.pair()
        return account

    def close(self) -> None:
        """Delete the accounts the lab created, where an operation allows; never raises (notes instead)."""
        for account in self.accounts:
            if not account.created or account.deleted:
                continue
            if not self.has("delete_account"):
                self.notes.append(f"account {account.user} left in place: the IXIT documents no delete_account")
                continue
            try:
                if account.token is None:
                    account.login()
                account.call("delete_account")
                account.deleted = True
            except Exception as exc:  # noqa: BLE001 - clean-up must never change the verdict
                self.notes.append(self.redactor.text(f"account {account.user} not deleted at teardown: {exc}"))

    def exchanges(self) -> list[dict[str, Any]]:
        """Every exchange so far, secrets masked (again, for secrets learned after an exchange was kept)."""
        return self.redactor.data(self._exchanges)

    def _keep(self, record: dict[str, Any]) -> None:
        self._exchanges.append(self.redactor.data(record))


@dataclass
class TestAccount:
    """One account of the service the lab uses: created (signup) or the inventory's, its token once logged in."""

    __test__ = False  # not a pytest test class

    client: ServiceClient
    user: str
    password: str
    created: bool
    token: str | None = None
    deleted: bool = False
    paired_at: Moment | None = None

    def values(self) -> dict[str, Any]:
        return {"user": self.user, "password": self.password}

    def login(self) -> None:
        """Log in (a new session); the token is where the IXIT's `token` pointer says."""
        op = self.client.operation("login")
        reply = self.client.call("login", values=self.values(), check=False)
        if reply.status in (401, 403) and not self.created:
            raise LabLoginRejected(f"the service refused the login of the inventory's service.account {self.user} "
                                   f"(HTTP {reply.status}); fix the account or its password in the inventory",
                                   bench=self.client.bench)
        self.client.expect(reply, op)
        if not op.token:
            raise CertlabError("ixit: associated_service.operations.login has no `token` pointer; give the JSON "
                               "pointer to the bearer token in its answer, e.g. token: /token")
        token = self.client.pointer(reply, op.token, field_name="token")
        if not isinstance(token, str) or not token:
            raise DutError(f"the service's answer to login has no bearer token at {op.token}")
        self.client.redactor.add(token)
        self.token = token

    def call(self, name: str, *, value: Any = None, check: bool = True) -> Reply:
        values = self.values()
        if value is not None:
            values["value"] = value
        if name == "pair_device":
            values["pairing_code"] = self.client.pairing_code()
        return self.client.call(name, token=self.token, values=values, check=check)

    def pair(self) -> Reply:
        """Pair the bench's sample to this account with the code on its label."""
        reply = self.call("pair_device")
        self.paired_at = reply.moment
        return reply

    def read(self, name: str, *, pointer: str | None = None, what: str) -> Any:
        """The value operation `name` reads (its `value` pointer, or `pointer`)."""
        pointer = pointer or self.client.operation(name).value
        if not pointer:
            raise CertlabError(f"ixit: associated_service.operations.{name} has no `value` pointer; give the JSON "
                               f"pointer to {what} in its answer")
        return self.client.pointer(self.call(name), pointer, field_name=what)

    def records(self) -> tuple[list[Record], Reply]:
        """The personal-data records the service shows this account (list_personal_data)."""
        op = self.client.operation("list_personal_data")
        if not op.items or not op.item_time:
            raise CertlabError("ixit: associated_service.operations.list_personal_data needs `items` and `item_time` "
                               "(JSON pointers to the records and to each record's ISO 8601 time)")
        reply = self.call("list_personal_data")
        if reply.data is None:
            raise DutError("the service's answer to list_personal_data is not JSON")
        return records_of(reply.data, op.items, op.item_time, operation="list_personal_data"), reply

    def wait_for_records(self, bound_s: float, until: Callable[[list[Record]], bool], *,
                         poll_s: float = 1.0) -> tuple[list[Record], bool]:
        """Poll list_personal_data until `until(records)` or `bound_s` passes: (last records, whether it held)."""
        deadline = time.monotonic() + bound_s
        for _ in range(int(bound_s / poll_s) + 2):  # bounded in count as in time
            found, _reply = self.records()
            if until(found):
                return found, True
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(poll_s, left))
        found, _reply = self.records()
        return found, until(found)
