"""The latest report of each model: a later batch replaces an earlier one, never the reverse, and
groups stay apart."""

from __future__ import annotations

from daemon.api import ModelReports
from dataflows.records import ModelReport


def _report(model: str, batch: int, accuracy: float, group: str = "g", ts_ms: int = 0) -> ModelReport:
    return ModelReport(group=group, model=model, version=f"{group}/1", role="candidate", ts_ms=ts_ms, batch=batch,
                       rolling_accuracy=accuracy)  # fmt: skip


def test_the_latest_batch_wins_whatever_order_the_reports_arrive_in() -> None:
    reports = ModelReports()
    reports.put(_report("fork", 2, 0.7))
    reports.put(_report("fork", 2, 0.8, ts_ms=5))  # the same batch, reported again later
    reports.put(_report("champion", 1, 0.6))
    reports.put(_report("fork", 1, 0.5))  # an older one, read late
    reports.put(_report("fork", 9, 0.1, group="other"))
    latest = reports.latest("g")
    assert {m: r.rolling_accuracy for m, r in latest.items()} == {"fork": 0.8, "champion": 0.6}
    assert list(reports.latest("other")) == ["fork"]
    assert reports.latest("none") == {}
