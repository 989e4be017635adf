"""Headwater's events/s and event → prediction latency against processes, workers, micro-batch size
and candidates, through the real broker, with the plain consume/produce loop of `bench.e2e_kafka`
measured in the same run.

Headwater runs as an operator runs it: ``python -m daemon.cli run --config <yaml>`` in a process of
its own, with ``--processes P`` for a Bytewax cluster of P processes (`daemon.cluster`), the YAML
written from a `Settings` object, ``HEADWATER_*`` and ``BYTEWAX_*`` stripped from its environment.
Every topic has ``--partitions`` (8) partitions, so up to 8 workers in all have a partition each.

The factors are swept one at a time around a base point (1 process, 1 worker, micro-batches of 512,
the default configuration's one fork candidate), not as a full grid: each sweep changes one factor
and keeps the others at the base; the base point is measured once and belongs to every sweep.
Candidate sets are those of `bench.candidates` (0; 1 = the fork; 2 = the fork and river-logreg with
lr 0.1; 3 = those and river-hoeffding, the default's fork and 2 more; 4 = those and torch-mlp on the CPU).

For each configuration:

* **throughput** — ``-n`` events pre-loaded on one events topic (shared by every run); Headwater
  with ``runtime.tail: false`` drains it and exits. events/s = events / (the first to the last
  prediction's Kafka timestamp), with start-up (process start → first prediction) reported on its
  own; every event must get exactly one prediction and the process must exit 0.
* **latency** — `bench.latency.measure_latency`: a warm-up, then ``--rate`` events/s for
  ``--duration`` s with ``runtime.tail: true``; latency = the reader's receive time - the input's
  Kafka timestamp, p50/p99. Then SIGTERM, and the process must exit 0 within ``--stop-timeout``.

The loop (`bench.e2e_kafka.systems.throughput_baseline` and ``latency_baseline``, the same events
and topics' layout) runs at each micro-batch size swept, so every Headwater row has a ratio to the
loop at its own batch size.

The package: `systems` (the configurations, the daemon's process, each measurement), `render` (the
tables and the Markdown, from the JSON), `chart` (the PNG), `__main__` (the command line and the
order of the runs). Run from the repository root with the broker up (``scripts/kafka-local up``)::

    .venv/bin/python -m bench.scaling       # writes bench/results/scaling.{json,md,png}
"""
