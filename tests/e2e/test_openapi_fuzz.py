"""Schemathesis over the root's OpenAPI document: generated requests (bounded in number so
CI stays quick) never make the root fail, and documented answers match their schemas.

Operations are walked by hand rather than through schemathesis' pytest plugin, whose
lazy-fixture loader does not work with pytest 9."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.e2e.conftest import OPERATOR_KEY, RunningStack

pytestmark = pytest.mark.e2e
EXAMPLES_PER_OPERATION = 12


def test_generated_requests_never_make_the_root_fail(stack: RunningStack) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.root_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def exercise(case: schemathesis.Case) -> None:
            response = case.call(
                base_url=stack.root_url, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}
            )
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )

        exercise()
