"""Where the micro-batching was before it joined the flow: `dataflows.flow` holds `MicroBatchLogic`
and `MicroBatchState` now.

Recovery snapshots of the ``batching__train_jobs`` step pickle its state as
``dataflows.batching.MicroBatchState`` (pickle refers to a class by module and name), and still do:
keep this module. New code imports `dataflows.flow`.
"""

from dataflows.flow import MicroBatchLogic, MicroBatchState

__all__ = ["MicroBatchLogic", "MicroBatchState"]
