"""Property-based API testing: schemathesis generates requests from the OpenAPI schema.

Every operation gets valid and invalid inputs; none may produce a server error, and
every response must match the schema the app publishes (status codes, headers,
bodies). One check is left out: "positive data acceptance", because some requests
that the schema allows are still refused with a 400 and a reason (a search with
neither text nor an image: the schema cannot say "q or like or an upload").
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (pip install -e '.[test]')"
)
from hypothesis import HealthCheck, given, settings  # noqa: E402

from indexer.pipeline import Indexer  # noqa: E402
from searchengine.config import Settings  # noqa: E402
from web.app import create_app  # noqa: E402

EXAMPLES = 40


def _checker(operation, calls: dict):
    label = operation.label

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        calls[label] = calls.get(label, 0) + 1
        case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])

    return check


@pytest.mark.parametrize("api_key", [None, "s3cret"], ids=["open", "with-key"])
def test_no_server_errors_and_responses_match_the_schema(gallery, api_key):
    root, index = gallery
    se = Settings(index_path=index, captioner="none", ocr="none", roots=(str(root),), api_key=api_key)
    app = create_app(se, indexer_factory=Indexer.from_settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures, calls = [], {}
    for operation in operations:
        check = _checker(operation, calls)
        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    app.state.service.wait_for_index(60)
    # every operation was called; those with parameters many times
    assert len(calls) == len(operations) and sum(calls.values()) >= 200, calls
    assert not failures, "\n\n".join(failures)
