"""One valid request per command route, with the command it must produce."""

from __future__ import annotations

from typing import Any

import pytest

# (route, body, kind, wire args)
VALID: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("pause", {"reason": "labels late", "model": "fork"}, "pause", {"model": "fork"}),
    ("resume", {"reason": "labels back"}, "resume", {"model": None}),
    ("freeze", {"reason": "incident 42"}, "freeze", {}),
    ("unfreeze", {"reason": "incident over"}, "unfreeze", {}),
    ("promote", {"reason": "by hand", "version": "default/1"}, "promote",
     {"model": None, "version": "default/1", "skip_golden": False}),
    ("rollback", {"reason": "worse"}, "rollback", {"version": None}),
    ("add-candidate", {"reason": "try it", "candidate": {"name": "wide", "learner": "river-logreg"}},
     "add_candidate", {"candidate": {"name": "wide", "learner": "river-logreg"}}),
    ("retire", {"reason": "enough", "model": "fork"}, "retire", {"model": "fork"}),
    ("canary-ceiling", {"reason": "careful", "share": 0.1}, "set_canary_ceiling", {"share": 0.1}),
    ("replay", {"reason": "relearn", "candidate": {"name": "again"},
                "ranges": [{"topic": "events", "partition": 0, "first": 0, "last": 99}]},
     "replay", {"candidate": {"name": "again"}, "ranges": [{"topic": "events", "partition": 0, "first": 0,
                                                            "last": 99}]}),
    ("release-quarantine", {"reason": "the labeller is fixed", "learn": False}, "release_quarantine",
     {"learn": False}),
]  # fmt: skip

ROUTES = [pytest.param(route, body, id=route) for route, body, _, _ in VALID]
