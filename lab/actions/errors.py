"""The ways an action can refuse, typed: the API turns each into its HTTP status (lab/api/app.py),
the web app into a page or a message at the form field it names (lab/webui)."""

from __future__ import annotations

from collections.abc import Sequence


class ActionError(Exception):
    """An action refused; `str(exc)` is the one line shown to the caller."""

    status = 400


class NotFound(ActionError):
    """Missing, or another tenant's: the same answer, so an id is never confirmed to exist."""

    status = 404

    def __init__(self, what: str, ident: object, message: str | None = None) -> None:
        super().__init__(message or f"no {what} {ident}")
        self.what, self.ident = what, ident


class Forbidden(ActionError):
    """The caller's role may not do this."""

    status = 403


class Conflict(ActionError):
    """Not now: the object's state does not allow it (a booking not yet accepted, a report not approved)."""

    status = 409


class Invalid(ActionError):
    """Bad input, naming the field: `loc` is the path of the field ("body", "ics") and the message
    says what is wrong and the fix."""

    status = 422

    def __init__(self, loc: Sequence[str | int], msg: str, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.loc, self.msg, self.kind = list(loc), msg, kind

    @property
    def field(self) -> str:
        """The form field this concerns: the last name in `loc`."""
        names = [str(part) for part in self.loc if not isinstance(part, int)]
        return names[-1] if names else "body"


class TooLarge(ActionError):
    status = 413


class Unavailable(ActionError):
    """A part of the lab the action needs is not usable now (the inventory, the store)."""

    status = 503


class TimedOut(ActionError):
    status = 504
