"""Evaluators: pure decision logic over live evidence — no Kafka, no files, no clocks of their own.

For now, prequential (test-then-train) scoring. Canary, bandit, shadow and golden-set evaluators
build on the same shape: observe, then report; only the promoter acts.
"""

from evaluators.prequential import PrequentialScore, PrequentialSnapshot

__all__ = ["PrequentialScore", "PrequentialSnapshot"]
