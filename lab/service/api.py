"""Pure helpers of the service client: JSON pointers, operation templates, secret redaction.

No network here, so every rule (RFC 6901 escaping, typed `{value}`, masking a password in a URL)
is shown by a unit test in a second.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from lab.errors import CertlabError

PLACEHOLDERS = ("serial", "user", "password", "pairing_code", "value")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
MASK = "***"
#: keys whose values are secrets wherever they appear in a request or response body or headers
SECRET_KEYS = re.compile(r"pass(word)?|token|secret|pairing[_-]?code|authori[sz]ation|cookie", re.IGNORECASE)
_MIN_SECRET = 4  # shorter values are masked by key only: masking "1" everywhere would hide every number


class PointerError(LookupError):
    """A JSON pointer does not resolve in a document (the service's answer is not as documented)."""


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at `pointer` (RFC 6901: "" is the whole document, `~1` is `/`, `~0` is `~`)."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise PointerError(f"JSON pointer {pointer!r} does not start with '/'")
    value = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            if token not in value:
                raise PointerError(f"no member {token!r} (pointer {pointer})")
            value = value[token]
        elif isinstance(value, list):
            if not re.fullmatch(r"0|[1-9][0-9]*", token) or int(token) >= len(value):
                raise PointerError(f"no element {token!r} in a list of {len(value)} (pointer {pointer})")
            value = value[int(token)]
        else:
            raise PointerError(f"{token!r} looked up in a {type(value).__name__} (pointer {pointer})")
    return value


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def fill_text(template: str, values: dict[str, Any], *, operation: str, url: bool = False) -> str:
    """`template` with its placeholders replaced (URL-quoted in a path); a missing value is a CertlabError."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values or values[name] is None:
            raise CertlabError(f"ixit: associated_service.operations.{operation} uses {{{name}}}, which the lab "
                               f"has no value for here")
        text = _text(values[name])
        return quote(text, safe="") if url else text
    return _PLACEHOLDER.sub(one, template)


def fill_body(body: Any, values: dict[str, Any], *, operation: str) -> Any:
    """The JSON body with placeholders filled; a string that is exactly "{value}" becomes the typed value."""
    if isinstance(body, str):
        if body == "{value}":
            if "value" not in values:
                raise CertlabError(f"ixit: associated_service.operations.{operation} uses {{value}}, which the lab "
                                   "has no value for here")
            return values["value"]
        return fill_text(body, values, operation=operation)
    if isinstance(body, dict):
        return {k: fill_body(v, values, operation=operation) for k, v in body.items()}
    if isinstance(body, list):
        return [fill_body(v, values, operation=operation) for v in body]
    return body


def join_url(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path.lstrip("/") if path else base_url


class Redactor:
    """Masks the secrets the lab used or received (passwords, tokens, pairing codes) wherever they appear.

    A value is masked as typed, URL-quoted and JSON-escaped; a member or header whose name says it
    is a secret (password, token, authorization, ...) is masked whatever its value.
    """

    def __init__(self) -> None:
        self._forms: set[str] = set()

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < _MIN_SECRET:
            return
        for form in (secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1]):
            self._forms.add(form)

    def text(self, value: str) -> str:
        for form in sorted(self._forms, key=len, reverse=True):
            value = value.replace(form, MASK)
        return value

    def data(self, value: Any) -> Any:
        """A copy of a JSON-like value with every secret masked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: (MASK if isinstance(k, str) and SECRET_KEYS.search(k) and v not in (None, "")
                        else self.data(v)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value
