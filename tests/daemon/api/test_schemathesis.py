"""schemathesis over the committed OpenAPI document, with the admin token and without: whatever a
client sends — what the document allows and much that it does not — the API answers no 5xx, with
a status code and a body the document names.

Each test gets its own app over a fresh registry; its fake sink answers for the train step, so a
request that waits for an outcome ends at once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import DataGenerationMethod
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from schemathesis.specs.openapi.schemas import BaseOpenAPISchema

from daemon.api.openapi import DOCUMENT
from tests.daemon.api.conftest import GROUP, TOKEN, Api, ApiFactory

schemathesis.experimental.OPEN_API_3_1.enable()

CHECKS = (not_a_server_error, status_code_conformance, response_schema_conformance)
EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture
def served(make_api: ApiFactory) -> Api:
    return make_api(answer="applied")


@pytest.fixture
def document(served: Api) -> BaseOpenAPISchema:
    return schemathesis.from_dict(json.loads(DOCUMENT.read_text()), app=served.app,
                                  data_generation_methods=DataGenerationMethod.all())  # fmt: skip


schema = schemathesis.from_pytest_fixture("document")


@schema.hook
def before_generate_path_parameters(context: Any, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the daemon's own group: a made-up one stops at 404 before anything else runs."""

    def ours(parameters: Any) -> Any:
        return parameters | {"group": GROUP} if isinstance(parameters, dict) and "group" in parameters else parameters

    return st.one_of(strategy.map(ours), strategy)


def _call(case: Any, served: Api, token: str | None) -> None:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    case.headers = headers
    counted = len(served.requests.seen)
    response = case.call()
    case.validate_response(response, checks=CHECKS)
    if token is None and case.method == "POST":
        assert response.status_code == 401, response.text
    assert [code for _, _, code in served.requests.seen[counted:]] == [response.status_code]  # counted, once


@schema.parametrize()
@EXAMPLES
def test_with_the_token_no_server_errors(case: Any, served: Api) -> None:
    _call(case, served, TOKEN)


@schema.parametrize()
@EXAMPLES
def test_without_the_token_no_server_errors_and_no_command(case: Any, served: Api) -> None:
    _call(case, served, None)
    assert served.sink.sent == []


def test_hypothesis_is_a_version_schemathesis_3_can_use() -> None:
    from hypothesis.internal.conjecture.utils import many

    assert hasattr(many, "more"), (
        "hypothesis 6.170.10 and later dropped the internals hypothesis-jsonschema (schemathesis 3) draws objects "
        "with: every operation fails with AttributeError 'more'. Pin hypothesis<6.170.10 in the dev extra."
    )
