"""The embedded model registry: every model version, what it learned from down to Kafka offsets,
the verdicts on it and the decisions taken, in a directory holding one SQLite file and
content-addressed, digest-checked checkpoints. `SqliteRegistry` is the daemon's
`dataflows.ports.Registry`.
"""

from daemon.registry.errors import RegistryError, UnknownVersionError
from daemon.registry.lineage import gaps, merge_ranges
from daemon.registry.store import SqliteRegistry

__all__ = ["RegistryError", "SqliteRegistry", "UnknownVersionError", "gaps", "merge_ranges"]
