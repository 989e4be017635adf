"""Training: one writer per model group joins labels, hands the labelled examples to every model's
lane, collects what the lanes did, feeds the trials, and has the promoter act on their verdicts.

Per served micro-batch (events already predicted, and delayed labels):
1. labels that waited longer than the window for their event are dead-lettered;
2. labelled examples are gathered — inline labels, and delayed labels joined to the features
   logged when the event was served — and unlabelled features wait in the join;
3. one `Job` with those examples (and the input offsets the batch covered) goes to every lane:
   the champion's lane only scores (the champion never learns: what serves is frozen), the
   candidates' lanes score then learn, the standby's (the previous champion, on probation) scores;
4. whatever the lanes finished meanwhile is collected: a `ModelReport` per model and batch, the
   learning recorded in the registry (offset lineage), and the paired scores fed to each trial;
5. verdicts that changed are published; the trials' actions (promote, refuse, roll back, retire
   the standby, start a trial over) are carried out through the promoter.

The step never waits for a lane except at the end of the input: serving goes on while models learn.
`TrainLogic` (`step.py`) is the Bytewax hooks, run inline or, by default, on a thread of its own
(`step.TrainThread`); the state it keeps is `state.py`'s.

`GroupState` and `Slot` are pickled in recovery snapshots as ``dataflows.train.*``: keep them here.
"""

from dataflows.train.golden import GOLDEN_MIN_SIZE
from dataflows.train.state import (
    KEEP_SNAPSHOTS,
    STATE_FORMAT,
    GroupState,
    Slot,
    TrainContext,
    TrainOutput,
    decision_record,
    new_group_state,
)
from dataflows.train.step import TrainLogic

__all__ = [
    "GOLDEN_MIN_SIZE",
    "KEEP_SNAPSHOTS",
    "STATE_FORMAT",
    "GroupState",
    "Slot",
    "TrainContext",
    "TrainLogic",
    "TrainOutput",
    "decision_record",
    "new_group_state",
]
