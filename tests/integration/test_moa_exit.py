"""A process that served with a MOA model exits promptly when it is done: no wait for the JVM."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from daemon.kafka_client import make_producer, produce_all
from daemon.workload import Workload, WorkloadSpec
from tests.integration.conftest import SettingsFactory

pytestmark = pytest.mark.kafka

# run_daemon in a thread, as a host application (or the benchmarks) runs it, then the end of the script.
SCRIPT = """
import sys, threading
from pathlib import Path
from daemon.config import load_settings
from daemon.runner import run_daemon
settings = load_settings(Path(sys.argv[1]))
thread = threading.Thread(target=run_daemon, args=(settings,))
thread.start()
thread.join()
print("returned", flush=True)
"""


def test_a_process_that_served_with_a_moa_model_exits_at_once(fresh_settings: SettingsFactory, tmp_path: Path) -> None:
    settings = fresh_settings(model={"learner": "moa-hat"}, runtime={"tail": False, "workers": 1})
    k = settings.kafka
    spec = WorkloadSpec(n_events=2000, drift_at=2000, malformed_every=0, unmatched_labels=0, delayed_share=0.0)
    items = [i for i in Workload(spec).items() if i.kind == "events"]
    produce_all(make_producer(k.bootstrap_servers), ((k.events_topic, i.key, i.value) for i in items))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    daemon = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert daemon.stdout is not None
        assert daemon.stdout.readline().strip() == "returned"  # run_daemon ended at the end of the topics
        returned = time.monotonic()
        assert daemon.wait(timeout=60) == 0
        assert time.monotonic() - returned < 30
    finally:
        if daemon.poll() is None:
            daemon.kill()
