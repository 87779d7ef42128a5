"""A property-based fuzz of the published OpenAPI document (schemathesis) against the running API: valid and
invalid inputs to every operation, sent with the write token, and never a 5xx, every response as
documented."""

from __future__ import annotations

import schemathesis
from api_setup import WRITE_TOKEN
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

# Cases generated per operation and mode; the SSE streams never end, so they are left out (test_api.py and
# test_live_api.py read them).
EXAMPLES = 12
ALL_CHECKS = list(HealthCheck)


def test_no_operation_answers_with_a_server_error(base_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [op for op in operations if not op.path.endswith("/events")]
    assert len(fuzzed) >= 12, [op.path for op in operations]
    for operation in fuzzed:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=ALL_CHECKS)
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(
                    headers={"Authorization": f"Bearer {WRITE_TOKEN}"},
                    checks=[not_a_server_error, response_schema_conformance],
                    timeout=30,
                )

            try:
                check()
            except Unsatisfiable:
                # An operation with no parameter and no body has no invalid input to make.
                assert mode is GenerationMode.NEGATIVE and not operation.query and not operation.body, (
                    operation.path
                )
