"""The web app after `certlab demo`: one account per role, so a newcomer signs in as a lab
engineer, a manufacturer and a certifier in a browser, without a terminal.

The accounts live in the demo's own store (the default one) like any other; their passwords are
made once, at random, kept owner-only in the data folder (`demo-accounts.txt`) and shown by
`certlab demo` and `certlab serve --demo`. The API token each account gets when it is made is
kept there too (third column), so the demo's manufacturer can call the API (register a release)
from a terminal. A real lab never gets them: only those commands call `ensure_demo_accounts`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from lab.ownerfiles import private_dir, write_private
from lab.store.accounts import add_user, password_matches, set_password, token_hash
from lab.store.db import Store
from lab.store.models import User
from lab.store.unit import reading

ACCOUNTS_FILE = "demo-accounts.txt"
DEMO_SIGNING_NOTE = "made a lab signing key for the demo: {private} (public key {public})"


@dataclass(frozen=True)
class DemoAccount:
    name: str
    role: str
    org: str
    password: str = ""
    token: str = ""  # the API token, when this data folder kept it (made with the account)


DEMO_ACCOUNTS = (
    DemoAccount("demo-engineer", "engineer", "certlab demo lab"),
    DemoAccount("demo-manufacturer", "manufacturer", "Demo Thermostats Ltd"),
    DemoAccount("demo-certifier", "certifier", "Demo Certification Body"),
)


def _known(path: Path) -> dict[str, tuple[str, str]]:
    """name -> (password, token or "") of the accounts made before (lines `name password [token]`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    rows = (line.split() for line in lines if line.strip() and not line.startswith("#"))
    return {r[0]: (r[1], r[2] if len(r) == 3 else "") for r in rows if len(r) in (2, 3)}


def ensure_demo_accounts(store: Store, data_dir: Path) -> list[DemoAccount]:
    """The three demo accounts, made (or given a password again) where missing; the same passwords
    on every call while the data folder keeps its file."""
    private_dir(data_dir)
    path = data_dir / ACCOUNTS_FILE
    known = _known(path)
    with reading(store) as s:
        live = {u.name: u for u in s.scalars(select(User).where(User.name.in_([a.name for a in DEMO_ACCOUNTS])))}
    made = []
    for account in DEMO_ACCOUNTS:
        user = live.get(account.name)
        if user is not None and user.revoked_at is not None:
            continue  # someone revoked it on purpose: the demo does not bring it back
        password, token = known.get(account.name, (None, ""))
        if user is None:
            user, token = add_user(store, name=account.name, role=account.role, org=account.org)
        elif token and token_hash(token) != user.token_hash:
            token = ""  # not this account's token any more: never shown as if it were
        if password is None or not password_matches(user.password_hash, password):
            password = secrets.token_urlsafe(12)
            set_password(store, account.name, password)
        made.append(DemoAccount(account.name, account.role, account.org, password, token))
    write_private(path, "# certlab demo accounts: name, web password, API token (when kept)\n"
                  + "".join(f"{a.name} {a.password} {a.token}".rstrip() + "\n" for a in made))
    return made


def demo_token(data_dir: Path, name: str) -> str | None:
    """The API token `ensure_demo_accounts` kept for a demo account, if any."""
    return _known(data_dir / ACCOUNTS_FILE).get(name, ("", ""))[1] or None


def ensure_demo_key() -> str | None:
    """The demo signs its reports: the lab key, made on first use (as `certlab keys init` would);
    the line saying so when it was made here, else None."""
    from lab.reports.keys import PRIVATE_KEY_FILE, default_key_dir, init_keys

    if (default_key_dir() / PRIVATE_KEY_FILE).exists():
        return None
    keys = init_keys()
    return DEMO_SIGNING_NOTE.format(private=keys.private_key, public=keys.public_key)


def accounts_lines(accounts: list[DemoAccount], address: str) -> list[str]:
    """What `certlab demo` and `certlab serve --demo` print: where to go and how to sign in."""
    width = max(len(a.name) for a in accounts)
    return [f"sign in at {address} as:"] + [f"  {a.name:<{width}}  password {a.password}   ({a.role}, {a.org})"
                                            for a in accounts]


DEMO_MANUFACTURER = next(a.org for a in DEMO_ACCOUNTS if a.role == "manufacturer")


def certify_demo_run(run_dir: Path, inventory: Path) -> dict:
    """After `certlab demo`: its report approved (the demo plays the lab's authoriser, the lab
    profile's first signatory) and the product's record opened under the demo manufacturer, so that
    a release registered through the API is re-tested unprompted. The record's public view."""
    from lab.actions.context import Services
    from lab.actions.errors import ActionError
    from lab.actions.records import open_record_from_run
    from lab.api.ratelimit import RateLimiter
    from lab.api.settings import ApiSettings
    from lab.errors import CertlabError
    from lab.reports.build import approve_report, find_profile
    from lab.reports.approval import APPROVAL_FILE
    from lab.store import open_store

    profile = find_profile(run_dir)
    if not profile.signatories:
        raise CertlabError(f"{profile.path}: signatories: the demo approves its report as the lab profile's first "
                           f"signatory, and it names none; fix: add one")
    if not (run_dir / APPROVAL_FILE).exists():
        signatory = profile.signatories[0]
        approve_report(run_dir, by=signatory.name, role=signatory.role, profile=profile)
    settings = ApiSettings.from_env(inventory=inventory)
    with open_store(settings.database_url) as store:
        svc = Services(store=store, settings=settings, limiter=RateLimiter(1.0, 1.0))
        try:
            return open_record_from_run(svc, run_dir, manufacturer=DEMO_MANUFACTURER, product_name=None,
                                        by="certlab demo")
        except ActionError as exc:
            raise CertlabError(f"the demo's product record: {exc}") from None


def record_lines(view: dict, address: str, accounts_file: Path, *, token_kept: bool = True) -> list[str]:
    """What `certlab demo` prints about the product record: where to read it, how to register the
    next release as the demo manufacturer (its token from the accounts file, or, when this data
    folder's account was made before tokens were kept, how to get one), how to verify it."""
    model = view["model"]
    firmware = (view.get("record") or {}).get("baseline", {}).get("firmware") or "1.4.0"
    parts = firmware.split(".")
    version = ".".join(parts[:-1] + [str(int(parts[-1]) + 1)]) if parts[-1].isdigit() else f"{firmware}.1"
    folder = f"/tmp/certlab-release-{model}-{version}"
    token = f"$(awk '$1==\"demo-manufacturer\"{{print $3}}' {accounts_file})" if token_kept else "$TOKEN"
    hint = [] if token_kept else [
        f"  (demo-manufacturer's API token was not kept in {accounts_file.parent}, made by an older certlab: "
        f"TOKEN=$(.venv/bin/certlab users add demo-maker-2 --role manufacturer --org '{DEMO_MANUFACTURER}' | tail -1))"]
    return hint + [
        f"  read it (no account): {address}{view['links']['page']}   JSON: {address}/records/{model}",
        f"  .venv/bin/certlab sim release {model} {version} --out {folder}",
        f"  curl -H \"Authorization: Bearer {token}\" -F image=@{folder}/{model}-{version}.clfw "
        f"-F sbom=@{folder}/{model}-{version}.cdx.json {address}/api/v1/records/{model}/releases",
        f"  .venv/bin/certlab verify-record {address}/records/{model}/revisions",
    ]
