"""The names recovery snapshots give two of the train step's classes: ``dataflows.gate.Trial`` and
``dataflows.gate.PairingBuffer`` (pickle refers to a class by module and name). Both live in
`dataflows.train.trials` now, and are still pickled under these names: keep this module.
"""

from dataflows.train.trials import PairingBuffer, Trial

__all__ = ["PairingBuffer", "Trial"]
