"""What the chart's layout for N replicas assumes of Bytewax's recovery store (README.md, "Where
the state lives"): the first process holds every partition on its own volume and the others an
empty directory; the cluster runs, and a later run resumes every worker's state from it. A
directory that does not exist stops a process, which is why the chart's init step makes it on
every pod."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bytewax.recovery import init_db_dir

from daemon.cluster import free_addresses

FLOW = """
import sys
from bytewax._bytewax import cli_main
from bytewax.connectors.stdio import StdOutSink
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.testing import TestingSource
import bytewax.operators as op

flow = Dataflow("layout")
keyed = op.key_on("key", op.input("in", flow, TestingSource(range(int(sys.argv[4])))), lambda x: str(x % 3))
op.output("out", op.stateful_map("sum", keyed, lambda s, x: ((s or 0) + x, (s or 0) + x)), StdOutSink())
cli_main(flow, workers_per_process=2, process_id=int(sys.argv[1]), addresses=sys.argv[2].split(";"),
         epoch_interval=None, recovery_config=RecoveryConfig(sys.argv[3]))
"""


def _cluster(script: Path, stores: list[Path], events: int = 30) -> list[subprocess.CompletedProcess[str]]:
    addresses = ";".join(free_addresses(len(stores)))
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), addresses, str(store), str(events)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, store in enumerate(stores)
    ]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def _outputs(done: list[subprocess.CompletedProcess[str]]) -> list[str]:
    return sorted(line for d in done for line in d.stdout.splitlines() if line.startswith("("))


def _sums(events: range, start: dict[str, int] | None = None) -> list[str]:
    """What the flow prints for ``events``: each key's running sum, from ``start``."""
    sums, out = dict(start or {}), []
    for x in events:
        key = str(x % 3)
        sums[key] = sums.get(key, 0) + x
        out.append(str((key, sums[key])))
    return sorted(out)


def test_a_process_with_an_empty_recovery_directory_runs_and_resumes(tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text(FLOW)
    first, other = tmp_path / "pod-0", tmp_path / "pod-1"
    first.mkdir()
    other.mkdir()
    init_db_dir(first, 8)  # what daemon.recovery.prepare_recovery does on the first process only

    ran = _cluster(script, [first, other])
    assert [d.returncode for d in ran] == [0, 0], [d.stderr[-2000:] for d in ran]
    assert _outputs(ran) == _sums(range(30))
    assert all(_outputs([d]) for d in ran), "both processes hold some keys' state"
    assert not list(other.iterdir()), "the other process wrote nothing of its own"

    # A restart with more input: every key's sum goes on from the snapshot, whichever process's
    # workers held it (4 workers on 2 processes; only the first process has a store).
    resumed = _cluster(script, [first, other], events=60)
    assert [d.returncode for d in resumed] == [0, 0], [d.stderr[-2000:] for d in resumed]
    assert _outputs(resumed) == _sums(range(30, 60), start={"0": 135, "1": 145, "2": 155})


def test_a_missing_recovery_directory_stops_the_cluster(tmp_path: Path) -> None:
    script = tmp_path / "flow.py"
    script.write_text(FLOW)
    first = tmp_path / "pod-0"
    first.mkdir()
    init_db_dir(first, 8)
    failed = _cluster(script, [first, tmp_path / "never-made"])
    assert failed[1].returncode != 0
