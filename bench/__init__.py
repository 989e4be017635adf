"""Headwater's benchmarks: each measures Headwater against a baseline in the same run and writes
``bench/results/<name>.json`` (every number, the parameters, the machine) and ``<name>.md`` (a table,
and what the numbers mean in words). ``bench/README.md`` says what each measures and how to run it.

One entry point per benchmark, ``python -m bench.<name>``: `e2e_kafka`, `candidates`, `parity`, `moa`
and `scaling` (packages: the measurement, its rendering, its command line) go through the local broker;
`snapshot`, `copies`, `live_ask` and `torch_steps` run in memory. What they share is said once:

- `broker`: fresh topics, consumers, the synthetic events, a daemon's Kafka settings;
- `latency`: the fixed-rate latency method (a system in a thread, a producer, a reader);
- `daemon_run`: a daemon measured that way, and its model events read back;
- `streams`: River's seeded generators and the learner specs; `alone`: a learner alone, outside Headwater;
- `report`: shared flags, the machine and commit, number formats, tables, the results files.
"""
