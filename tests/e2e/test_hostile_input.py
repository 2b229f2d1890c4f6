"""Hostile input over HTTP, as an attacker sends it: NUL and lone surrogates in every text
field of every POST route, hostile path parameters, megabyte strings, wrong types and
bytes that are not UTF-8. Every answer is a 4xx problem naming what is wrong; none is a
500, and the root and its projections keep working afterwards."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import COLONY_KEY, OPERATOR_KEY, SERVICE_KEY, RunningStack, until

pytestmark = pytest.mark.e2e
NUL = "a\u0000b"
VALID_BODIES: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("post", "/missions"): (
        SERVICE_KEY,
        {
            "type": "crm",
            "mode": "assisted",
            "objective": "Qualify Northwind Traders",
            "project_id": "atlas",
            "lead": {"company": "Northwind Traders", "contact": "Ana Trujillo"},
        },
    ),
    ("post", "/missions/{mission_id}/fail"): (OPERATOR_KEY, {"reason": "stuck"}),
    ("post", "/missions/{mission_id}/replay"): (OPERATOR_KEY, {"reason": "again"}),
    ("post", "/approvals/{approval_id}/approve"): (OPERATOR_KEY, {"reason": "checked"}),
    ("post", "/approvals/{approval_id}/reject"): (OPERATOR_KEY, {"reason": "wrong account"}),
    ("post", "/internal/artifacts"): (
        COLONY_KEY,
        {"artifact_id": "a-1", "kind": "source", "source": "kb://x", "content": "text"},
    ),
}
HOSTILE_SEGMENTS = ["%00", "a%00b", "%ff%fe", "%ed%a0%80", "x" * 5_000, "..%2f..%2fetc", "%"]


def text_fields(body: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of every string leaf of `body`."""
    if isinstance(body, dict):
        for key, value in body.items():
            yield from text_fields(value, f"{path}.{key}".strip("."))
    elif isinstance(body, str):
        yield path


def replaced(body: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    copy = dict(body)
    copy[head] = replaced(body[head], rest, value) if rest else value
    return copy


def operations(stack: RunningStack) -> list[tuple[str, str]]:
    document = httpx.get(f"{stack.root_url}/openapi.json").json()
    return [(method, path) for path, item in document["paths"].items() for method in item]


def concrete(path: str, segment: str = "x-1") -> str:
    return (
        path.replace("{mission_id}", segment)
        .replace("{approval_id}", segment)
        .replace("{content_hash}", segment)
    )


def assert_problem(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/problem+json", response.text[:200]
    return dict(response.json())


@pytest.mark.parametrize("route", sorted(VALID_BODIES), ids=lambda r: r[1])
@pytest.mark.parametrize("bad", [NUL, "\ud800"], ids=["nul", "lone-surrogate"])
def test_unstorable_text_in_any_field_is_refused_naming_it(
    stack: RunningStack, route: tuple[str, str], bad: str
) -> None:
    key, body = VALID_BODIES[route]
    with stack.client(key) as client:
        for field in text_fields(body):
            raw = json.dumps(replaced(body, field, bad))  # ASCII-escaped: "\u0000", "\ud800"
            response = client.post(
                concrete(route[1]), content=raw, headers={"Content-Type": "application/json"}
            )
            problem = assert_problem(response, 422)
            assert problem["errors"][0]["field"] == field, problem
    with stack.client() as client:
        assert client.get("/missions", params={"limit": 1}).status_code == 200


def test_hostile_path_parameters_are_refused_as_problems(stack: RunningStack) -> None:
    with stack.client(OPERATOR_KEY) as client:
        for method, path in operations(stack):
            if "{" not in path:
                continue
            for segment in HOSTILE_SEGMENTS:
                url = f"{stack.root_url}{concrete(path, segment)}"
                response = client.request(method.upper(), url, json={"reason": "x"})
                assert_problem(response, 404, 422)
        rejected = client.post("/approvals/%00/reject", json={"reason": "x"})
        assert assert_problem(rejected, 422)["errors"][0]["field"] == "approval_id"


def test_wrong_types_huge_strings_and_invalid_utf8_bodies_are_refused(
    stack: RunningStack,
) -> None:
    for (_, path), (key, body) in VALID_BODIES.items():
        with stack.client(key) as client:
            url = concrete(path)
            for field in text_fields(body):
                assert_problem(client.post(url, json=replaced(body, field, 42)), 422)
                huge = client.post(url, json=replaced(body, field, "x" * 2_000_000))
                assert_problem(huge, 413, 422)
            invalid = client.post(
                url, content=b'{"reason": "\xff\xfe"}', headers={"Content-Type": "application/json"}
            )
            assert_problem(invalid, 400, 422)
            not_json = client.post(url, content=b"{", headers={"Content-Type": "application/json"})
            assert_problem(not_json, 400)
            assert_problem(client.post(url, content=b"\x00\x01"), 400, 422)


def test_hostile_query_values_are_refused_as_problems(stack: RunningStack) -> None:
    with stack.client() as client:
        for params in (
            {"status": "\u0000"},
            {"type": "x\u0000"},
            {"cursor": "1_a\u0000"},
            {"created_after": "0.5"},
            {"created_before": "9999-12-31T23:59:59-23:59"},
            {"limit": "many"},
        ):
            problem = assert_problem(client.get("/missions", params=params), 422)
            assert problem["errors"][0]["field"] == next(iter(params))


async def test_the_projection_keeps_flowing_after_the_attack(stack: RunningStack) -> None:
    key, body = VALID_BODIES[("post", "/missions")]
    with stack.client(key) as client:
        opened = client.post("/missions", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert opened.status_code == 202
        mission_id = opened.json()["mission_id"]
        await until(lambda: client.get(f"/missions/{mission_id}").status_code == 200)
        assert client.get("/readyz").status_code == 200
