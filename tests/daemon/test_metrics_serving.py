"""Who serves, as /metrics shows it: the board's tables, as the promoter publishes them, reach the
info gauge, the model age and the canary share through `ServingWatch`, also after a restart."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from daemon.metrics import PrometheusMetrics, ServingWatch
from daemon.promoter import BoardPromoter
from daemon.registry import SqliteRegistry
from dataflows.serve import ServingBoard, ServingTable
from learners import Learner, LearnerSpec, build_learner
from tests.dataflows.helpers import FakeClock


def _learner() -> Learner:
    return build_learner(LearnerSpec("river-logreg"), n_features=2, n_classes=2, feature_names=["a", "b"])


def _serving(registry: CollectorRegistry) -> dict[str, str]:
    return {
        s.labels["route"]: s.labels["version"]
        for family in registry.collect()
        for s in family.samples
        if s.name == "headwater_serving_info" and s.labels["group"] == "default"
    }


def test_promotions_canaries_and_live_forks_reach_the_serving_gauges(tmp_path: Path) -> None:
    prom, clock = CollectorRegistry(), FakeClock(2_000.0)
    metrics = PrometheusMetrics(prom, clock=clock)
    age = {"group": "default", "route": "champion"}
    learner = _learner()
    with SqliteRegistry(tmp_path / "registry") as registry:
        board = ServingBoard(on_change=ServingWatch(metrics, registry, clock))
        promoter = BoardPromoter(registry, board)
        first = registry.create_version("default", name="champion", parent=None, learner=learner, config={}, ts_ms=1)
        promoter.install("default", version=first.id, learner=learner, reason="first", ts_ms=1_500_000)
        assert _serving(prom) == {"champion": "default/1"}
        assert prom.get_sample_value("headwater_serving_model_age_seconds", age) == 500.0  # promoted at 1,500 s
        assert prom.get_sample_value("headwater_canary_share_ratio", {"group": "default"}) == 0.0

        fork = registry.create_version("default", name="fork", parent=first.id, learner=learner, config={}, ts_ms=2)
        promoter.set_canary("default", version=fork.id, learner=learner, share=0.25)
        clock.t = 2_010.0
        assert _serving(prom) == {"champion": "default/1", "canary": "default/2"}
        assert prom.get_sample_value("headwater_canary_share_ratio", {"group": "default"}) == 0.25
        assert prom.get_sample_value("headwater_serving_model_age_seconds", {**age, "route": "canary"}) == 10.0
        promoter.set_canary("default", version=fork.id, learner=learner, share=0.5)  # the same canary, more keys
        assert prom.get_sample_value("headwater_serving_model_age_seconds", {**age, "route": "canary"}) == 10.0

        assert promoter.serve_fresh("default", champion=first.id, version="default/3", learner=learner)
        assert _serving(prom)["live"] == "default/3"
        assert promoter.serve_fresh("default", champion=first.id, version=None, learner=None)
        assert "live" not in _serving(prom)

        promoter.promote("default", version=fork.id, learner=learner, previous=first.id, reason="passed",
                         evidence={}, ts_ms=2_005_000)  # fmt: skip
        assert _serving(prom) == {"champion": "default/2"}  # the new table has no canary
        assert prom.get_sample_value("headwater_serving_model_age_seconds", age) == 5.0
        assert prom.get_sample_value("headwater_serving_model_age_seconds", {**age, "route": "canary"}) is None
        assert prom.get_sample_value("headwater_canary_share_ratio", {"group": "default"}) == 0.0


def test_after_a_restart_the_champions_age_counts_from_its_promotion(tmp_path: Path) -> None:
    """A new process (new registry of metrics, new board) that follows the champion's table from
    the serving-table topic reports how long it has served, not how long this process has run."""
    learner = _learner()
    with SqliteRegistry(tmp_path / "registry") as registry:
        promoter = BoardPromoter(registry, ServingBoard())
        first = registry.create_version("default", name="champion", parent=None, learner=learner, config={}, ts_ms=1)
        promoter.install("default", version=first.id, learner=learner, reason="first", ts_ms=1_000_000)
        table = promoter.board.current("default")

        prom, clock = CollectorRegistry(), FakeClock(4_600.0)
        board = ServingBoard(on_change=ServingWatch(PrometheusMetrics(prom, clock=clock), registry, clock))
        assert board.follow(ServingTable("default", table.champion, seq=table.seq))
        age = prom.get_sample_value("headwater_serving_model_age_seconds", {"group": "default", "route": "champion"})
        assert age == 3_600.0
