"""Property-based API testing: schemathesis generates requests from the OpenAPI schema.

Every operation gets valid and invalid inputs; none may produce a server error, and
every response must match the schema the app publishes (status codes, headers,
bodies). One check is left out: "positive data acceptance", because some requests
that the schema allows are still refused with a 400 and a reason (a search with
neither text nor an image: the schema cannot say "q or like or an upload").

JSON bodies are also sent hostile, as no JSON Schema generator makes them: one value
(or the whole body) replaced by NaN, Infinity, 1e400, a 4,300-digit number or a list
nested thousands deep. They must be refused with a 4xx, never a 500. Requests carry
what the page sends (``X-Requested-With``), and the key where one is set, so the
operations behind the guards are exercised too (the guards have their own tests).
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (pip install -e '.[test]')"
)
import json  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from indexer.pipeline import Indexer  # noqa: E402
from searchengine.config import Settings  # noqa: E402
from tests.web.conftest import build_gallery  # noqa: E402
from web.app import create_app  # noqa: E402

EXAMPLES = 40
#: JSON no schema-driven generator writes (json.dumps cannot write most of it either).
HOSTILE_JSON = st.sampled_from(
    [
        *("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 4_300),
        "[" * 5_000 + "]" * 5_000,
        '{"a":' * 3_000 + "1" + "}" * 3_000,
    ]
)
_MARK = "\x00hostile\x00"
#: Operations fuzzed on a gallery of their own: they may take the shared gallery's images
#: away (a generated ``{"folders": ["/"]}`` forgets them all), which would leave every
#: operation fuzzed after them (and the other parametrisation) on an empty index.
OWN_GALLERY = {"/api/forget"}


@st.composite
def hostile_body(draw, body) -> bytes:
    """``body`` as JSON text with one value (a field's, an item's, or the whole) made hostile."""
    token = draw(HOSTILE_JSON)
    if isinstance(body, dict) and body and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(body)))
        value = body[key]
        body = {**body, key: [*value, _MARK] if isinstance(value, list) and draw(st.booleans()) else _MARK}
    else:
        body = _MARK
    return json.dumps(body).replace(json.dumps(_MARK), token).encode()


def _checker(operation, calls: dict, headers: dict):
    label = operation.label

    @given(case=operation.as_strategy(), data=st.data())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case, data):
        calls[label] = calls.get(label, 0) + 1
        if case.media_type == "application/json" and data.draw(st.booleans(), label="hostile JSON"):
            case.body = data.draw(hostile_body(case.body))
        case.call_and_validate(
            headers=headers, excluded_checks=[schemathesis.checks.positive_data_acceptance]
        )

    return check


def _operations(root, index, api_key, own: bool):
    """An app on ``index`` and its operations: those in OWN_GALLERY (``own``), or the others."""
    se = Settings(
        index_path=index,
        captioner="none",
        ocr="none",
        roots=(str(root),),
        api_key=api_key,
        allowed_hosts=("testserver",),  # the Host schemathesis sends
    )
    app = create_app(se, indexer_factory=Indexer.from_settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    return app, [op for op in operations if (op.path in OWN_GALLERY) == own]


@pytest.mark.parametrize("api_key", [None, "s3cret"], ids=["open", "with-key"])
def test_no_server_errors_and_responses_match_the_schema(gallery, api_key, tmp_path, tiny_embedder):
    root, index = gallery
    build_gallery(tmp_path / "photos", tmp_path / "index", tiny_embedder)
    app, operations = _operations(root, index, api_key, own=False)
    operations += _operations(tmp_path / "photos", tmp_path / "index", api_key, own=True)[1]
    assert len(operations) >= 10 and OWN_GALLERY <= {op.path for op in operations}
    failures, calls = [], {}
    headers = {"X-Requested-With": "schemathesis", **({"X-API-Key": api_key} if api_key else {})}
    for operation in operations:
        check = _checker(operation, calls, headers)
        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    app.state.service.wait_for_index(60)
    # every operation was called; those with parameters many times
    assert len(calls) == len(operations) and sum(calls.values()) >= 200, calls
    assert not failures, "\n\n".join(failures)
