"""Evaluators: pure decision logic over live evidence — no Kafka, no files, no clocks of their own.

They answer one question for the promoter: should this candidate replace the champion (shadow,
canary, golden set; a fork as soon as it is not worse: refresh), and should a freshly promoted
champion stay (probation)? Each takes per-example paired scores (``Paired``), and returns a
``Verdict``: a phase, a reason a person can read, and the numbers behind it. The sequential ones
test with an always-valid confidence sequence (``SequentialDifference``), so they may be read after
every micro-batch without inflating the false-promotion rate. A change detector (``ChangeDetector``,
River's ADWIN) watches the champion's errors: evidence from before a change in the data says nothing
about the candidates after it. A portfolio's weighted vote (``WeightedVote``: exponential weights
with a fixed share, guarded by the member that has done best lately) says how much each member's
probabilities count, and whether the vote or its leader should serve. A label quarantine
(``LabelQuarantine``) says whether a batch's labels may be learned, or are held back as suspect (a
loss spike or a label shift that a copy learning them cannot explain). A bandit gate
(``BanditGate``) shares the canary traffic among several candidates by their probability of being
the best (Thompson sampling on faded posteriors; UCB as an option) and passes the one that clearly
is, under an always-valid bound on the false-promotion rate. Evaluators observe and
report; only the promoter acts. No data is never success.
"""

from evaluators._trial import FAIL_FLOOR
from evaluators.bandit import BanditGate
from evaluators.base import Evaluator, Paired, Phase, Verdict
from evaluators.canary import CanaryEvaluator, canary_bucket
from evaluators.drift import Change, ChangeDetector
from evaluators.golden import GoldenEvaluator, Reservoir
from evaluators.prequential import PrequentialScore, PrequentialSnapshot, correctness, log_loss, paired_correctness
from evaluators.probation import ProbationEvaluator
from evaluators.quarantine import LabelQuarantine
from evaluators.refresh import RefreshEvaluator
from evaluators.shadow import ShadowEvaluator
from evaluators.stats import SequentialDifference
from evaluators.vote import VOTE, WeightedVote

__all__ = [
    "FAIL_FLOOR",
    "VOTE",
    "BanditGate",
    "CanaryEvaluator",
    "Change",
    "ChangeDetector",
    "Evaluator",
    "GoldenEvaluator",
    "LabelQuarantine",
    "Paired",
    "Phase",
    "PrequentialScore",
    "PrequentialSnapshot",
    "ProbationEvaluator",
    "RefreshEvaluator",
    "Reservoir",
    "SequentialDifference",
    "ShadowEvaluator",
    "Verdict",
    "WeightedVote",
    "canary_bucket",
    "correctness",
    "log_loss",
    "paired_correctness",
]
