"""The web app after `certlab demo`: one account per role, so a newcomer signs in as a lab
engineer, a manufacturer and a certifier in a browser, without a terminal.

The accounts live in the demo's own store (the default one) like any other; their passwords are
made once, at random, kept owner-only in the data folder (`demo-accounts.txt`) and shown by
`certlab demo` and `certlab serve --demo`. A real lab never gets them: only those commands call
`ensure_demo_accounts`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from lab.ownerfiles import private_dir, write_private
from lab.store.accounts import add_user, password_matches, set_password
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


DEMO_ACCOUNTS = (
    DemoAccount("demo-engineer", "engineer", "certlab demo lab"),
    DemoAccount("demo-manufacturer", "manufacturer", "Demo Thermostats Ltd"),
    DemoAccount("demo-certifier", "certifier", "Demo Certification Body"),
)


def _known(path: Path) -> dict[str, str]:
    """name -> password of the accounts made before (lines `name password`)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    pairs = (line.split() for line in lines if line.strip() and not line.startswith("#"))
    return {p[0]: p[1] for p in pairs if len(p) == 2}


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
        if user is None:
            add_user(store, name=account.name, role=account.role, org=account.org)
        password = known.get(account.name)
        if user is None or password is None or not password_matches(user.password_hash, password):
            password = secrets.token_urlsafe(12)
            set_password(store, account.name, password)
        made.append(DemoAccount(account.name, account.role, account.org, password))
    write_private(path, "# certlab demo accounts for the web app: name password\n"
                  + "".join(f"{a.name} {a.password}\n" for a in made))
    return made


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
