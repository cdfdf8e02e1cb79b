"""The signed-in person's own account: who they are, and changing their web password."""

from __future__ import annotations

from sqlalchemy import select

from lab.actions.context import Caller, Services
from lab.actions.errors import Invalid, NotFound
from lab.errors import CertlabError
from lab.store.accounts import password_matches, set_password, user_for_token
from lab.store.models import User
from lab.store.unit import reading


def has_password(svc: Services, who: Caller) -> bool:
    with reading(svc.store) as s:
        return s.scalars(select(User.password_hash).where(User.id == who.id)).first() is not None


def change_password(svc: Services, who: Caller, *, current: str, new: str, again: str) -> None:
    """Set `who`'s password; proof is the current password, or the API token when none is set yet."""
    with reading(svc.store) as s:
        user = s.scalars(select(User).where(User.id == who.id)).first()
    if user is None or user.revoked_at is not None:
        raise NotFound("user", who.name)
    if user.password_hash is not None:
        proven = password_matches(user.password_hash, current)
    else:
        holder = user_for_token(svc.store, current)
        proven = holder is not None and holder.id == user.id
    if not proven:
        what = "current password" if user.password_hash is not None else "API token"
        raise Invalid(["body", "current"], f"that is not your {what}; fix: type it again")
    if new != again:
        raise Invalid(["body", "again"], "the two new passwords differ; fix: type the same password twice")
    try:
        set_password(svc.store, user.name, new)
    except CertlabError as exc:
        raise Invalid(["body", "new"], str(exc)) from None
