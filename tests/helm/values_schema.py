"""The chart's ``values.schema.json``: its ``config`` part derived from the daemon's settings model.

The chart passes ``.Values.config`` to the daemon as its config file, beside the settings the chart
sets itself from its own values (`CHART_OWNED`). So that ``helm install`` refuses a misspelt key
inside ``config`` as it refuses one elsewhere, the schema of ``config`` is `daemon.config.Settings`'s
JSON schema (every section forbids unknown keys) without the settings the chart owns. The rest of
the file is written by hand. ``python -m tests.helm.values_schema`` writes the file again after the
settings change; ``tests/helm/test_schema.py`` fails while it differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.config import Settings

__all__ = ["CHART_OWNED", "SCHEMA_PATH", "dumps", "rebuilt"]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "helm" / "headwater" / "values.schema.json"

# Settings the chart sets from its own values (section -> fields; None: the whole section).
CHART_OWNED: dict[str, frozenset[str] | None] = {
    "kafka": frozenset({"bootstrap_servers", "replication_factor", "security", "security_files"}),
    "admin": frozenset({"enabled", "host", "port", "token", "token_file"}),
    "runtime": frozenset({"recovery_dir", "workers", "tail"}),
    "registry": None,
}

CONFIG_DESCRIPTION = (
    "The daemon's own settings besides those the chart sets (kafka.bootstrap_servers, replication_factor, "
    "security, security_files; admin; registry; runtime.recovery_dir, workers, tail): daemon/config.py"
)


def config_schema() -> dict[str, Any]:
    """The schema of ``.Values.config``: the daemon's settings less `CHART_OWNED`, its definitions
    kept inside it (``#/properties/config/$defs/...``) so that the rest of the file is untouched."""
    schema = _lean(Settings.model_json_schema())
    defs: dict[str, Any] = schema.pop("$defs")
    for section, fields in CHART_OWNED.items():
        name = schema["properties"][section]["$ref"].rsplit("/", 1)[1]
        if fields is None:
            del schema["properties"][section]
            del defs[name]
            continue
        props = defs[name]["properties"]
        for field in fields:
            del props[field]
        defs[name]["required"] = [r for r in defs[name].get("required", []) if r in props]
        if not defs[name]["required"]:
            del defs[name]["required"]
    text = json.dumps(schema | {"$defs": defs}).replace('"#/$defs/', '"#/properties/config/$defs/')
    rebased: dict[str, Any] = json.loads(text)
    return {"description": CONFIG_DESCRIPTION, **rebased}


def _lean(node: Any) -> Any:
    """Without what only a form generator reads (titles, defaults) and pydantic's ``format: path``."""
    if isinstance(node, dict):
        return {
            k: _lean(v)
            for k, v in node.items()
            if k not in ("title", "default") and not (k == "format" and v == "path")
        }
    if isinstance(node, list):
        return [_lean(v) for v in node]
    return node


def rebuilt(current: str) -> str:
    """``current`` (the file's text) with its ``config`` part derived again."""
    values = json.loads(current)
    values["properties"]["config"] = config_schema()
    return dumps(values) + "\n"


def dumps(node: Any, indent: int = 0, width: int = 120) -> str:
    """JSON that keeps a value on one line when it fits in ``width``, and packs the short members of
    an object that does not fit several to a line (the file stays short enough to read)."""
    flat = json.dumps(node, ensure_ascii=False)
    if indent + len(flat) <= width or not isinstance(node, dict | list) or not node:
        return flat
    pad = " " * (indent + 2)
    if isinstance(node, list):
        items = [pad + dumps(v, indent + 2, width) for v in node]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    lines: list[str] = []
    line = ""
    for key, value in node.items():
        member = f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}"
        if line and len(line) + len(member) + 2 <= width:
            line += ", " + member
            continue
        if line:
            lines.append(line)
        if len(pad) + len(member) <= width:
            line = pad + member
        else:
            lines.append(f"{pad}{json.dumps(key)}: {dumps(value, indent + 2, width)}")
            line = ""
    if line:
        lines.append(line)
    return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"


def main() -> None:
    SCHEMA_PATH.write_text(rebuilt(SCHEMA_PATH.read_text()))
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
