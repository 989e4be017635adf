"""Where `migrate` was before the train package: `dataflows.train.migrate` holds it now.

Kept for the callers that import it from here (the flow); new code imports
`dataflows.train.migrate`.
"""

from dataflows.train.migrate import MIGRATES_FROM, migrate

__all__ = ["MIGRATES_FROM", "migrate"]
