"""What the API is as an HTTP service: no CORS for other origins, Prometheus' format on /metrics,
requests counted by route template, and the committed OpenAPI document is the app's."""

from __future__ import annotations

import json

from prometheus_client import CONTENT_TYPE_LATEST, Counter
from prometheus_client.parser import text_string_to_metric_families

from daemon.api.openapi import DOCUMENT, document, render
from tests.daemon.api.conftest import GROUP, Api


def test_a_foreign_origin_gets_no_cors_header(api: Api) -> None:
    origin = {"Origin": "https://evil.example"}
    for answer in (
        api.client.get(f"/groups/{GROUP}", headers=origin),
        api.post("freeze", {"reason": "r"}, headers=origin),
        api.client.options(
            f"/groups/{GROUP}/commands/freeze", headers=origin | {"Access-Control-Request-Method": "POST"}
        ),
    ):
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")], answer.headers
    assert api.client.options(f"/groups/{GROUP}/commands/freeze", headers=origin).status_code == 405


def test_metrics_serves_the_collector_registry_in_prometheus_format(api: Api) -> None:
    Counter("headwater_test_things", "things", ["kind"], registry=api.deps.collector).labels("a").inc(3)
    answer = api.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    [sample] = [s for s in families["headwater_test_things"].samples if s.name == "headwater_test_things_total"]
    assert (sample.labels, sample.value) == ({"kind": "a"}, 3.0)


def test_requests_are_counted_by_route_template_and_status(api: Api) -> None:
    api.client.get(f"/groups/{GROUP}/versions/3")
    api.client.get(f"/groups/{GROUP}/versions/99")
    api.client.get("/no/such/path")
    api.post("freeze", {"reason": "r"})
    api.post("freeze", {"reason": "r"}, token="wrong")
    api.client.request("BREW", "/healthz")
    assert api.requests.seen == [
        ("GET", "/groups/{group}/versions/{number}", 200),
        ("GET", "/groups/{group}/versions/{number}", 404),
        ("GET", "unmatched", 404),
        ("POST", "/groups/{group}/commands/freeze", 202),
        ("POST", "/groups/{group}/commands/freeze", 401),
        ("OTHER", "/healthz", 405),
    ]


def test_a_failing_route_is_counted_as_500(api: Api) -> None:
    api.registry.close()  # every read now raises
    assert api.client.get(f"/groups/{GROUP}").status_code == 500
    assert api.requests.seen == [("GET", "/groups/{group}", 500)]


def test_the_committed_openapi_document_is_the_apps(api: Api) -> None:
    """If this fails, the API changed: run `python -m daemon.api.openapi` and commit docs/openapi.json."""
    committed = json.loads(DOCUMENT.read_text())
    assert document(api.app) == committed
    assert render(committed) == DOCUMENT.read_text()  # as written: a regenerated file has no noise in its diff
    post = committed["paths"]["/groups/{group}/commands/freeze"]["post"]
    assert post["security"] == [{"HTTPBearer": []}]
    assert "security" not in committed["paths"]["/groups/{group}"]["get"]
