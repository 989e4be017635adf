"""MOA learners behind Headwater (issue 14): how to call them, whether an adaptive random forest as
champion keeps up with 5,000 events/s, and what a MOA learner costs at start-up and in memory.

Three parts (``--parts``), one after the other, on the same seeded stream (a `bench.streams` stream,
``--stream``; default ``rbf``: River's RandomRBFDrift, 10 numeric features, 2 classes):

1. **calls**: for ``moa-hat`` and ``moa-arf`` (10 members), predict + learn events/s on the first
   ``--calls-events`` events (5 times as many for the single tree), three ways, each on a fresh
   learner built the same way (same seed):
   *per-event JPype* (one ``DenseInstance`` per event, ``setDataset`` with the learner's header, then
   ``getVotesForInstance`` and ``trainOnInstance`` on the MOA object: two Python→Java calls per event,
   plus the votes back as an array), *batched bridge* (`learners.moa.MoaLearner.predict_proba` then
   ``learn`` on batches of ``--calls-batch``: two calls per batch, what Headwater does) and the
   *CapyMOA API* (``LabeledInstance.from_array``, ``predict_proba``, ``train``: the "alone" side of part
   2). First a JIT warm-up: each way once on 5,000 events of another seed of the stream. Then
   ``--calls-rounds`` rounds, the order of the ways reversed every other round; the median of each
   way, and batched ÷ per-event. After each run the learner's probabilities on 500 probe events are
   kept: the three ways must leave the same model (the largest difference is reported).
2. **throughput**: ``moa-arf`` (10 members) as the champion of a daemon with Headwater's default
   model configuration (`daemon.runner.run_daemon` in a thread, fresh topics and registry): one
   fork candidate that learns, the shadow gate, default micro-batches, lanes ``auto`` (threads on a
   machine with fewer than 3 CPUs), 1 worker, one partition (the stream's order). ``--rate`` (5,000)
   events/s for ``--duration`` (30) s are sent with `bench.latency.measure_latency` (a warm-up of other
   ids first, until the first prediction and then ``--warmup`` s at the rate), **every event with its
   label inline**: the fork is offered as many labelled examples per second as events, more than a
   10-member forest learns on one core, so what it learns per second is its capacity behind
   Headwater. Every event must get exactly one prediction (read back from the predictions topic;
   exit status 1 otherwise). From the model-events topic's ``report`` records: the fork's examples
   learned per second while the measured events were sent (reports stamped between the first and
   the last measured event's input timestamp), its backlog (``lag_batches``) and the batches it
   skipped (a lane more than ``promotion.max_lag_batches`` batches or ``max_lag_s`` behind skips its
   oldest: those examples are never learned; their count is read from the skip reports). Then, in
   the same process, after the daemon stopped: **CapyMOA alone** on the same measured events,
   ``AdaptiveRandomForestClassifier(schema, ensemble_size=10, random_seed=...)`` with
   ``predict_proba(inst)`` + ``train(inst)`` per ``LabeledInstance.from_array(schema, x, y)``, and
   **the bridge alone** (Headwater's learner, batches of 100, no daemon), events/s. The ratio
   fork-learned/s ÷ CapyMOA-alone events/s is issue 14's (≥ 0.8 wanted, else the lag is reported).
   A JIT warm-up (each way on 5,000 events of another seed) comes first.
3. **startup**: fresh ``python -c`` processes, ``--startup-reps`` times each (interleaved): import
   Headwater's learners only; build ``river-logreg``; build River's ``ARFClassifier`` (10 trees);
   build ``moa-arf`` (the JVM starts and the bridge is compiled); the two forests again, then
   predict + learn ``--startup-events`` events of the stream (batches of 100); and the daemon's
   start-up check (`daemon.runner.check_learner`, after importing the daemon) for ``river-logreg``
   and ``moa-arf``. Wall time from spawn to exit, the phases timed inside the child, and peak resident
   memory (the child's ``VmHWM``, JVM included: it runs in the process); medians. CapyMOA starts
   the JVM with ``CAPYMOA_JVM_ARGS`` (default ``-Xmx8g -Xss10M``).

The package: `calls`, `throughput` and `startup` (the three parts), `render` (tables, what the
numbers say, the Markdown, from the JSON), `__main__` (the command line); here the parameters and
what the parts share. Run from the repository root with the broker up (``scripts/kafka-local up``)::

    .venv/bin/python -m bench.moa               # writes bench/results/moa.{json,md}, ~6 min on 2 cores
    .venv/bin/python -m bench.moa --quick       # a smoke run, ~1 min
    .venv/bin/python -m bench.moa --parts calls,startup
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PARTS = ("calls", "throughput", "startup")
WARM_EVENTS = 5000  # JIT warm-up events, of another seed of the stream
PROBE_EVENTS = 500
BRIDGE_BATCH = 100  # the bridge-alone batch in part 2


@dataclass(frozen=True)
class Params:
    bootstrap: str
    partitions: int
    parts: tuple[str, ...]
    stream: str
    seed: int
    model_seed: int
    calls_events: int
    calls_batch: int
    calls_rounds: int
    rate: float
    duration_s: float
    warmup_s: float
    timeout_s: float
    startup_reps: int
    startup_events: int
    keep_topics: bool
    out_dir: Path
    quick: bool
