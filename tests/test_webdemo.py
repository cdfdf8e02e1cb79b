"""The demo's web accounts: one per role, passwords kept owner-only and stable across calls."""

from __future__ import annotations

import stat

from lab.store import open_store
from lab.store.accounts import revoke_user, set_password, user_for_password
from lab.webdemo import ACCOUNTS_FILE, ensure_demo_accounts


def test_three_roles_each_sign_in_with_the_printed_password(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        made = ensure_demo_accounts(store, tmp_path / "data")
        assert sorted(a.role for a in made) == ["certifier", "engineer", "manufacturer"]
        for account in made:
            assert user_for_password(store, account.name, account.password) is not None
        path = tmp_path / "data" / ACCOUNTS_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert all(f"{a.name} {a.password}" in path.read_text() for a in made)


def test_a_second_call_keeps_the_passwords_and_repairs_a_changed_one(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        first = {a.name: a.password for a in ensure_demo_accounts(store, tmp_path)}
        set_password(store, "demo-certifier", "changed by someone else")
        second = {a.name: a.password for a in ensure_demo_accounts(store, tmp_path)}
        assert second["demo-engineer"] == first["demo-engineer"]
        assert second["demo-certifier"] != first["demo-certifier"]
        assert user_for_password(store, "demo-certifier", second["demo-certifier"]) is not None


def test_a_revoked_demo_account_stays_revoked(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        ensure_demo_accounts(store, tmp_path)
        revoke_user(store, "demo-manufacturer")
        assert "demo-manufacturer" not in [a.name for a in ensure_demo_accounts(store, tmp_path)]


def test_each_account_keeps_the_api_token_it_was_made_with(tmp_path):
    from lab.store.accounts import user_for_token
    from lab.webdemo import demo_token

    with open_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        made = {a.name: a.token for a in ensure_demo_accounts(store, tmp_path)}
        again = {a.name: a.token for a in ensure_demo_accounts(store, tmp_path)}
        assert again == made and all(made.values())
        holder = user_for_token(store, demo_token(tmp_path, "demo-manufacturer"))
        assert holder is not None and holder.name == "demo-manufacturer"
        # a token the store no longer knows for that account is never shown as its token
        path = tmp_path / ACCOUNTS_FILE
        path.write_text(path.read_text().replace(made["demo-engineer"], "clt_not-this-accounts-token"))
        assert {a.name: a.token for a in ensure_demo_accounts(store, tmp_path)}["demo-engineer"] == ""


def test_the_record_lines_name_the_next_release_the_token_file_and_the_verification(tmp_path):
    from lab.webdemo import record_lines

    view = {"model": "TH-100", "record": {"baseline": {"firmware": "1.4.0"}},
            "links": {"page": "/public/records/TH-100"}}
    lines = "\n".join(record_lines(view, "http://127.0.0.1:8303", tmp_path / ACCOUNTS_FILE))
    assert "http://127.0.0.1:8303/public/records/TH-100" in lines
    assert "certlab sim release TH-100 1.4.1 --out /tmp/certlab-release-TH-100-1.4.1" in lines
    assert f"{tmp_path / ACCOUNTS_FILE}" in lines and "/api/v1/records/TH-100/releases" in lines
    assert "certlab verify-record http://127.0.0.1:8303/records/TH-100/revisions" in lines


def test_without_a_kept_token_the_lines_say_how_to_get_one(tmp_path):
    from lab.webdemo import record_lines

    view = {"model": "TH-100", "record": {"baseline": {"firmware": "1.4.0"}}, "links": {"page": "/public/records/TH-100"}}
    lines = "\n".join(record_lines(view, "http://127.0.0.1:8303", tmp_path / ACCOUNTS_FILE, token_kept=False))
    assert "was not kept" in lines and "certlab users add" in lines and "Bearer $TOKEN" in lines
    assert "awk" not in lines
