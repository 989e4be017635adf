"""The admin API's OpenAPI document, as committed in docs/openapi.json.

``python -m daemon.api.openapi`` writes it again (``--check`` only says whether it differs);
tests/daemon/api/test_openapi.py fails while the committed document differs from the app's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from daemon.api.app import create_app
from daemon.api.deps import ApiDeps
from daemon.config import Settings, load_settings

__all__ = ["DOCUMENT", "document", "render"]

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def _settings() -> Settings:
    # The document does not depend on settings: any valid ones build the same routes.
    return load_settings(None, schema={"features": ["x"], "classes": [0, 1]}, admin={"token": "document"})


class _NoRegistry:  # the document is generated without a registry or a broker
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(name)


def document(app: FastAPI | None = None) -> dict[str, Any]:
    if app is None:
        app = create_app(_settings(), ApiDeps(registry=_NoRegistry(), commands=_NoRegistry()))
    return app.openapi()


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/openapi.json differs; write nothing")
    args = parser.parse_args(argv)
    text = render(document())
    if args.check:
        same = DOCUMENT.exists() and DOCUMENT.read_text() == text
        print(f"{DOCUMENT}: {'up to date' if same else 'differs: run python -m daemon.api.openapi'}")
        return 0 if same else 1
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
