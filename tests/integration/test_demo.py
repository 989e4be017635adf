"""`headwater demo`, the main job for a new user, end to end on the real broker."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.kafka


def _demo(kafka_bootstrap: str, *args: str) -> str:
    """What ``headwater demo`` printed, as a new user runs it (2 workers); it must exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "demo", "--bootstrap-servers", kafka_bootstrap, "--workers", "2",
         "--timeout", "150", *args],
        capture_output=True, text=True, timeout=240, check=False, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_demo_accounts_for_every_event_and_prints_the_summary(kafka_bootstrap: str) -> None:
    # 20,000 events: enough for a promoted model to be serving well before the drift at 10,000 (with
    # 8,000, the first promotion came around the drift or after it, and the windows compared
    # learning, not the drift: the test passed or failed with the timing).
    out = _demo(kafka_bootstrap, "--events", "20000", "--rate", "4000")
    assert "Headwater demo: summary" in out
    assert re.search(r"predictions out\s+│\s+20000\b", out), out[-3000:]
    expected = re.search(r"dead letters\s+│\s+(\d+) \(expected (\d+)\)", out)
    assert expected is not None
    assert expected.group(1) == expected.group(2)
    accuracies = [float(v) for v in re.findall(r"accuracy [a-z ]+\(events [^)]*\)\s+│\s+([\d.]+)%", out)]
    before, just_after, end = accuracies
    assert just_after < before
    assert end > just_after
    # the candidates serve as a vote (the default), and its weights moved after the drift
    assert re.search(r"served by route\s+│.*\bvote: \d+", out), out[-3000:]
    weights = re.findall(r"vote weights (?:before the drift|just after|at the end)[^│]*│\s+(.*?)\s+│", out)
    assert len(weights) == 3 and "-" not in weights and weights[0] != weights[1], weights
    # The run's topics are throwaway: a broker loads every partition left on disk when it starts.
    run = re.search(r"Headwater demo run ([0-9a-f]+):", out)
    assert run is not None, out[:500]
    left = [t for t in AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
            if t.startswith(f"headwater-demo-{run.group(1)}.")]  # fmt: skip
    assert left == []


def test_demo_with_a_moa_candidate_runs_it_beside_the_others(kafka_bootstrap: str) -> None:
    out = _demo(kafka_bootstrap, "--moa", "--events", "12000", "--rate", "3000")
    assert "moa-arf" in out
    assert re.search(r"predictions out\s+│\s+12000\b", out), out[-3000:]
    # MOA's forest was built in the daemon's JVM and learned beside the others (on 2 cores, with
    # three other candidates, it may not have earned a verdict yet).
    learned = re.search(r"labelled examples learned\s+│\s+(.*?)\s+│", out)
    assert learned is not None, out[-3000:]
    counts = dict(pair.split(": ") for pair in learned.group(1).split(", "))
    assert int(counts["arf"]) > 0, learned.group(1)
