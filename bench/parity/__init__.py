"""Parity: does a learner behind Headwater learn as well as the same learner alone, on the same stream?

A user who moves a River model behind Headwater expects it to learn as well as it did in their
notebook, on the same stream with the same label delay (issue 13). For each learner (the built-ins of
`learners.factory.LEARNERS`, and a River model given by import path, `bench.parity:perceptron`) and
each stream (`STREAMS`, River's seeded synthetic generators, two classes, numeric features):

- **alone**: the learner built by `learners.build_learner`, fed one event at a time in memory by
  River's `river.stream.simulate_qa` with ``delay`` (default 200): each event is predicted
  (``predict_proba`` of one row) when it comes, and learned (``learn`` of one row) when its label
  comes, ``delay`` events later — a progressive validation with delay. For River models, River's own
  `river.evaluate.iter_progressive_val_score` with the same delay runs too (the "River pvs" column),
  as a check of the loop above;
- **Headwater**: the same events through the real broker to a daemon (`daemon.runner.run_daemon` in a
  process of its own, as in production: the producer and reader here took a fifth of its interpreter
  lock when it ran in a thread of this one; fresh topics and registry per run), sent at ``--rate``
  events/s, each event's label on the labels topic ``delay`` events after it (labels are interleaved
  with events, so the producer sends 2 x rate messages/s; the last ``delay`` labels follow the last
  event). Topics have one partition
  (``--partitions``), so the daemon sees the stream in the order the alone side does. Every served
  prediction is read back from the predictions topic and scored ("served"); every event must have
  exactly one, else the exit status is 1. The candidate's own prequential accuracy (its lane scores
  each labelled example before learning it) is summed from the ``report`` records of the
  model-events topic ("lane").

Headwater's champion never learns: a candidate learns and replaces it. The served side's
configuration is `served_config`: the learner under test as the first (untrained) champion and one
fork candidate (the champion's state, learning on; forked again from each new champion), in a
thread lane (no SCHED_IDLE process that may starve on a busy machine; ``--lanes process``: a process
lane) that never skips a batch.
With ``--gate refresh`` (the default) the fork replaces the champion as soon as it is not worse
than it over ``--refresh-samples`` paired examples (`evaluators.RefreshEvaluator`). With ``--gate
shadow`` it needs to be *significantly* better, even behind the most permissive shadow gate the
settings allow (`PERMISSIVE_GATE`: alpha 0.5, 10 paired examples before a verdict, a trial that has
not concluded after 500 starts over, no wait after a refusal, a 10-example probation): the served
model then lags the learner, which is what the "served" gap measured before the refresh gate. The
"lane" column is the learner's accuracy behind Headwater independent of promotion timing.

Scores, the same code for both sides (`scores`), on the label the stream delivers (for the
label-flip burst, the flipped label — what either side is told and scored on):

- **overall**: accuracy over every event, from event 0 (the cold start included);
- **worst window**: the lowest accuracy of any ``--window`` consecutive events (a sliding window, at
  every position) starting at or after ``--warmup`` (the cold start is not a drift);
- **recovery** after each abrupt change (the STAGGER concept switches; the end of the Agrawal flip
  burst): with ``d`` the change and ``e`` the next change (or the end of the stream), the settled
  level ``L`` is the accuracy over the second half of ``[d, e)``; recovery is the smallest ``k >= 0``
  such that the 1,000 events ``[d + k, d + k + 1000)`` have accuracy ``>= L - 0.02`` — the events
  after the change before accuracy is back within 2 points of where it settles (None: never).

Gaps are Headwater - alone, in points. Default: 30,000 events per stream at 3,000/s (10 s of sending
per run), not the issue's 60,000: with 60,000 the full default run (4 learners x 4 streams) would take
about 18 minutes on 2 cores, most of it the alone side of torch-mlp (one row per SGD step, ~2 ms), so
``--events 60000`` is for a machine with time to spare. ``--quick``: 12,000 events.

MOA learners (``--learners moa``: ``moa-arf``, ``moa-srp``, ``moa-levbag``, 10 members each; not in
the default run) are judged against **CapyMOA alone** (issue 14): CapyMOA's classifier itself, built
as `learners.moa` builds it (`capymoa_classifier`: the CapyMOA class on the schema `learners.moa`
makes, the same seed and parameters), fed one event at a time with the same delay: predicted
(``predict_proba`` of a `capymoa.core.Instance`) when the event comes, trained (``train`` of a
``LabeledInstance``) when its label comes. The "alone" column (Headwater's wrapper, one event per
call) stays, as a check of the wrapper. Bar: served within 0.5 point of CapyMOA alone overall and 3
points in the worst window; the lane against CapyMOA scored at label. Before a MOA learner's first
Headwater side, a JIT warm-up (`jit_warmup`). Results of a run with a MOA learner go to
``parity-moa.{json,md}`` (``--stem``), so that a MOA run does not overwrite the River/torch results.
A 10-member forest learns a few thousand events/s on one core, so the MOA run sends 1,000 events/s
(at 3,000 the fork falls ever further behind: it never skips here), and refreshes every 300 paired
examples: at 100 it served worse in quick runs (each promotion waits for the fork's job in progress,
then copies the forest, ~150 ms for ARF, on the thread that serves; `bench/results/HISTORY.md`).

The package: `served` (the Headwater side: the daemon in a process of its own, fed through the
broker), `pair` (one learner on one stream, both sides, and the scores), `render` (tables, what the
numbers say, the Markdown, from the JSON), `__main__` (the command line); the streams and learner specs
are `bench.streams`, the alone sides `bench.alone`. Here: `perceptron`, the River model given by
import path. Run from the repository root with the broker up (``scripts/kafka-local up``)::

    .venv/bin/python -m bench.parity                # writes bench/results/parity.{json,md}
    .venv/bin/python -m bench.parity --quick --learners river-logreg --streams stagger
    .venv/bin/python -m bench.parity --learners moa --rate 1000 --refresh-samples 300   # parity-moa.{json,md}
"""

from __future__ import annotations

from typing import Any


def perceptron(n_features: int, n_classes: int, feature_names: list[str], seed: int, **params: Any) -> Any:
    """A River model given by import path: standard-scaled `river.linear_model.Perceptron`."""
    from river import linear_model, preprocessing

    return preprocessing.StandardScaler() | linear_model.Perceptron(**params)
