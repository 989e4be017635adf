"""Serving latency against the number of candidates, and a candidate too slow to keep up.

The daemon serves each micro-batch with a frozen snapshot of the champion, then hands the batch to
the train step, where every model learns on its own thread ("lane") with a bounded backlog. So the
event → prediction latency should not grow with the number of candidates, and a candidate that
cannot keep up should fall behind (skip its oldest batches) instead of holding back serving. This
measures both, in one run, through the real broker, with `bench.e2e_kafka`'s latency method
(`bench.latency.measure_latency`):

1. the same events at ``--rate`` for ``--duration`` s (after a warm-up) with 0, 2 and 4 candidates
   behind a river-logreg champion (`CANDIDATE_SETS`), the candidates in thread lanes and in process
   lanes (``--lanes``); each run's p50/p99 as a ratio to the 0-candidate run of its round
   (``--rounds``, interleaved: 0, 2 and 4 in threads, 2 and 4 in processes, then again);
2. the slow case: an adaptive random forest candidate (``--slow-learner``: River's, `arf`, a user
   factory; or MOA's, ``moa-arf``, learning in a JVM outside the GIL), in each kind of lane, on
   ``--slow-events`` offered at ``--slow-rate``, against a 0-candidate run at the same rate:
   predictions served / events offered (must be all), latency, and the forest's lag and skipped
   batches; then the same again with no Bytewax epoch end inside the run (with
   ``--long-epoch-run``), which tells what the per-epoch snapshots of the models cost serving.

Each run gets fresh topics and a fresh registry; what each model did (labelled examples scored and
learned, lag, skipped batches) is read back from the model-events topic. By default no candidate
can be promoted (``promotion.min_improvement`` 0.99), so the same frozen champion serves in every
run and only the candidates differ; ``--promote`` keeps the stock gate.

The package: `runs` (the parameters, the candidate sets and one daemon's run), `render` (tables,
notes, the Markdown, from the JSON), `__main__` (the command line and the order of the runs); here
`arf`, the slow candidate's factory (``bench.candidates:arf``). Run from the repository root with the
broker up (``python3 -m daemon.kafka_local up``)::

    .venv/bin/python -m bench.candidates          # writes bench/results/candidates.{json,md}
    .venv/bin/python -m bench.candidates --rounds 0 --slow-learner moa-arf --stem candidates-moa
"""

from __future__ import annotations

from typing import Any


def arf(n_features: int, n_classes: int, feature_names: list[str], seed: int, **params: Any) -> Any:
    """River's adaptive random forest, the slow candidate: ``n_models`` trees (10 unless given)."""
    from river import forest

    return forest.ARFClassifier(seed=seed, **({"n_models": 10} | params))
