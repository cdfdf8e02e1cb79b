"""A request body the service cannot use is a 422 with valid JSON, never a 500 (issue 15, item 11).

FastAPI's own 422 echoed the input: a lone surrogate (`"\\ud800"`, valid JSON) or NaN (Python's
json accepts the literal) made the 422 itself fail. lab/api/validation.py: the app's handler
makes what it echoes JSON-safe, and a body holding either is refused before a route stores it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apilib import acme, app, client, product  # noqa: F401 - fixtures of tests/apilib.py
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from lab.api.validation import json_safe, unusable_value, validation_errors

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_DIR = ROOT / "inventory" / "products" / "TH-100"
API = "/api/v1"




def booking_body(product_id: int) -> dict:
    return {"product_id": product_id, "firmware_version": "1.4.0", "edition": "v2", "suites": ["en303645"],
            "ics": (PRODUCT_DIR / "ics.yaml").read_text(encoding="utf-8"),
            "ixit": (PRODUCT_DIR / "ixit.yaml").read_text(encoding="utf-8")}


def problem(r) -> str:  # noqa: ANN001 - an httpx response
    assert r.status_code == 422, r.text
    detail = json.loads(r.text)["detail"]
    assert isinstance(detail, list) and {"loc", "msg", "type"} <= set(detail[0]), detail
    return detail[0]["msg"]


SURROGATE = '"\\ud800"'  # a JSON escape of a lone surrogate: valid JSON, not encodable text


@pytest.mark.parametrize("literal", [SURROGATE, "NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["model", "name"])
def test_a_lone_surrogate_or_nan_in_a_body_is_422_with_valid_json(literal: str, field: str, client: TestClient,
                                                                   acme: dict[str, str]) -> None:
    body = {"model": '"M-1"', "name": '"Thermostat"', "vendor": '"Acme"', field: literal}
    raw = "{" + ", ".join(f'"{k}": {v}' for k, v in body.items()) + "}"
    r = client.post(f"{API}/products", headers={**acme, "Content-Type": "application/json"}, content=raw)
    problem(r)
    assert json.loads(r.text)["detail"][0]["loc"] == ["body", field]
    assert client.get(f"{API}/products", headers=acme).json() == []  # nothing was stored


@pytest.mark.parametrize("literal", [SURROGATE, "NaN"])
def test_the_same_on_a_booking_and_inside_a_list(literal: str, client: TestClient, acme: dict[str, str],
                                                 product: int) -> None:
    raw = json.dumps(booking_body(product)).replace('["en303645"]', f'["en303645", {literal}]')
    r = client.post(f"{API}/bookings", headers={**acme, "Content-Type": "application/json"}, content=raw)
    problem(r)
    assert json.loads(r.text)["detail"][0]["loc"] == ["body", "suites", 1]


def test_the_422_handler_echoes_only_what_json_can_carry(app: FastAPI, client: TestClient) -> None:
    """The app's RequestValidationError handler, given inputs FastAPI's own handler made a 500 of."""
    @app.get(f"{API}/_probe")
    def probe() -> None:
        raise RequestValidationError([
            {"loc": ("body", "a"), "msg": "bad \ud800", "type": "x", "input": float("nan")},
            {"loc": ("body", "b"), "msg": "bad", "type": "y", "input": {"k\udcff": ["\ud800", float("-inf"), b"\xff"]}},
        ])

    r = client.get(f"{API}/_probe")
    assert r.status_code == 422
    detail = json.loads(r.text)["detail"]
    assert detail[0] == {"loc": ["body", "a"], "msg": "bad \\ud800", "type": "x", "input": "NaN"}
    assert detail[1]["input"] == {"k\\udcff": ["\\ud800", "-Infinity", "\\xff"]}


def test_validation_errors_drop_what_cannot_be_made_serialisable() -> None:
    huge = int("9" * 4000) ** 2  # 8000 digits: json.dumps refuses to write it
    errors = validation_errors([{"loc": ("q",), "msg": "m", "type": "t", "input": huge, "ctx": {"error": ValueError("x")}}])
    assert "input" not in errors[0] and errors[0]["loc"] == ["q"]
    json.dumps(errors, allow_nan=False)
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    echoed = json.dumps(json_safe({"a": (1, {2.5}), "b": deep}))
    assert echoed.startswith('{"a": [1, [2.5]], "b": [[[') and '"..."' in echoed and echoed.count("[") < 20
    assert unusable_value({"a": [1, {"b": 2.0}], "c": "ok"}) is None
    assert unusable_value({"a": [1, {"b": float("inf")}]}) == (("a", 1, "b"), "finite_number",
                                                               "Input should be a finite number")
