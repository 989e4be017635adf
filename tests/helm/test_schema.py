"""values.schema.json follows the daemon's settings model (`tests.helm.values_schema`)."""

from __future__ import annotations

import json

from tests.helm.values_schema import CHART_OWNED, SCHEMA_PATH, config_schema, rebuilt


def test_the_committed_schema_is_the_one_the_settings_give() -> None:
    current = SCHEMA_PATH.read_text()
    assert current == rebuilt(current), "the daemon's settings changed: run python -m tests.helm.values_schema"


def test_every_object_refuses_unknown_keys() -> None:
    def objects(node: object, where: str = "") -> list[str]:
        if isinstance(node, list):
            return [o for i, v in enumerate(node) for o in objects(v, f"{where}/{i}")]
        if not isinstance(node, dict):
            return []
        inner = [o for k, v in node.items() for o in objects(v, f"{where}/{k}")]
        open_ = node.get("type") == "object" and "additionalProperties" not in node and "$ref" not in node
        free = node.get("description", "").startswith("a Kubernetes object") or where.endswith(("/global", "/params"))
        return inner + ([where] if open_ and not free else [])

    assert objects(json.loads(SCHEMA_PATH.read_text())) == []


def test_settings_the_chart_owns_are_not_in_config() -> None:
    schema = config_schema()
    assert set(CHART_OWNED) - set(schema["properties"]) == {"registry"}
    for section, fields in CHART_OWNED.items():
        if fields is not None:
            name = schema["properties"][section]["$ref"].rsplit("/", 1)[1]
            assert not fields & set(schema["$defs"][name]["properties"])
