"""The OpenAPI document says what the API answers: every refusal declared with its body, files with their
content type. The fuzzing that checks the answers against it is tests/test_api_schemathesis.py (e2e lane);
this is the fast lane's look at the document itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.api.app import PREFIX, create_app
from lab.api.settings import ApiSettings

PROBLEM = {"$ref": "#/components/schemas/Problem"}
INVALID = {"$ref": "#/components/schemas/Invalid"}


@pytest.fixture
def doc(tmp_path: Path) -> Iterator[dict[str, Any]]:
    app = create_app(ApiSettings(data_dir=tmp_path / "data", reports_dir=tmp_path / "reports"))
    yield app.openapi()
    app.state.services.store.close()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield f"{method.upper()} {path}", op


def schema_of(op: dict[str, Any], status: str) -> dict[str, Any]:
    return op["responses"][status]["content"]["application/json"]["schema"]


def test_every_refusal_is_declared_with_its_body(doc: dict[str, Any]) -> None:
    for name, op in operations(doc):
        responses = op["responses"]
        if name != f"GET {PREFIX}/health":
            public = f" {PREFIX}/" not in name  # product records' public JSON: no token, so no 401
            for status in ("429", "503") if public else ("401", "429", "503"):
                assert schema_of(op, status) == PROBLEM, (name, status)
        if op.get("parameters") or op.get("requestBody"):
            assert schema_of(op, "422") == INVALID, name
        if op.get("requestBody"):
            assert schema_of(op, "400") == schema_of(op, "413") == PROBLEM, name
        for status, response in responses.items():
            if not status.startswith("2"):
                assert response.get("content"), (name, status, "an error without a declared body")


def test_a_422_is_always_the_list_shape(doc: dict[str, Any]) -> None:
    invalid = doc["components"]["schemas"]["Invalid"]
    assert invalid["properties"]["detail"]["type"] == "array"
    problem = doc["components"]["schemas"]["FieldProblem"]
    assert set(problem["required"]) == {"loc", "msg", "type"}


def test_files_are_declared_with_their_content_type(doc: dict[str, Any]) -> None:
    expected = {f"{PREFIX}/runs/{{run_id}}/report/archive": "application/gzip",
                f"{PREFIX}/runs/{{run_id}}/report/conformance.pdf": "application/pdf",
                f"{PREFIX}/runs/{{run_id}}/report/conformance.html": "text/html",
                f"{PREFIX}/firmware/{{firmware_id}}/content": "application/octet-stream",
                f"{PREFIX}/bookings/{{booking_id}}/ics": "application/yaml",
                f"{PREFIX}/bookings/{{booking_id}}/assessments": "application/yaml"}
    for path, media in expected.items():
        op = doc["paths"][path]["get"]
        assert list(op["responses"]["200"]["content"]) == [media], path
        assert list(op["responses"]["404"]["content"]) == ["application/json"], path


def test_ids_and_days_carry_their_real_constraints(doc: dict[str, Any]) -> None:
    run = doc["paths"][f"{PREFIX}/runs/{{run_id}}"]["get"]["parameters"][0]
    assert run["schema"]["pattern"]
    slots = {p["name"]: p["schema"] for p in doc["paths"][f"{PREFIX}/slots"]["get"]["parameters"]}
    for name in ("from", "to"):
        day = next(s for s in slots[name]["anyOf"] if s.get("type") == "string")
        assert day["format"] == "date" and day["pattern"].startswith("^"), slots[name]
    assert slots["model"]["anyOf"][0]["pattern"]
